"""The two lines on top of a dock's view: the status line and the alarm bar.

Each is a widget drawn from the dock's state (``draw``); neither talks to the
agent.  Their colours never mislead: the dot follows the link, and with no
agent nothing it said before is shown.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from scanner_agent.control import AgentStatus
from scanner_agent.tui._format import BAD_VERDICTS, LINK_STYLE, bill_progress, verdict_text


class StatusLine(Static):
    """The link's dot and word, the device, backlog, the bill's progress and the bell."""

    def draw(
        self,
        st: AgentStatus | None,
        *,
        connected: bool,
        bill_view: dict[str, Any] | None,
        bell: bool,
    ) -> None:
        """Draw the line for ``st`` (the latest status), as of ``connected``."""
        line = Text()
        if connected and st:
            link = st.link
            style = LINK_STYLE.get(link, "bold")
            line.append(" ● ", style)
            line.append(st.device_id, "bold")
            line.append("  link ")
            word = link.replace("_", " ")
            line.append(word if link in ("online", "degraded") else word.upper(), style)
        else:
            # No agent: nothing it said before still holds, so nothing of it is shown.
            line.append(" ○ ", "bold red")
            line.append(st.device_id if st else "agent", "bold")
            line.append("  no agent", "bold red")
        if connected:
            line.append(f"  backlog {st.backlog if st else 0}")
            line.append_text(bill_progress(bill_view))
        if bell:
            line.append("  bell", "dim")
        self.update(line)


class AlarmBar(Static):
    """The bar under the status line: the agent gone, an alarm, a refused or a good scan."""

    def draw(
        self,
        status: AgentStatus | None,
        *,
        connected: bool,
        why_not: str,
        scan: dict[str, Any] | None,
        fresh: bool,
    ) -> None:
        """Draw the most urgent of: no agent (``why_not``), the first alarm, the last
        ``scan`` refused (while ``fresh``), the last scan accepted, ready."""
        alarms = status.alarms if status else ()
        if not connected:
            kind = "-down"
            text = Text(f"NO AGENT: reconnecting…\n{why_not}", style="bold")
        elif alarms:
            kind, text = "-warn", Text(f"ALARM: {alarms[0]}", style="bold")
        elif scan is not None and scan.get("verdict") in BAD_VERDICTS and fresh:
            kind = "-bad"
            text = Text.assemble(
                verdict_text(str(scan["verdict"])),
                "  ",
                (str(scan.get("code") or ""), "bold"),
                "  ",
                str(scan.get("reason") or ""),
            )
        elif scan is not None and scan.get("verdict") not in BAD_VERDICTS:
            kind = "-ok"
            name = scan.get("name") or scan.get("product") or ""
            units = f" x{scan['units']}" if scan.get("carton") else ""
            text = Text(f"OK  {scan.get('code')}  {name}{units}")
        else:
            kind, text = "-idle", Text("Ready: scan a code")
        for cls in ("-down", "-warn", "-bad", "-ok", "-idle"):
            self.set_class(cls == kind, cls)
        self.update(text)
