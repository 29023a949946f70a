"""The dispatch terminal's views: live scans, the bill, devices, link and queue.

Each view is a plain container that is handed JSON from the control
interface (``show``/``add``) and draws it; none of them talks to the agent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from scanner_agent.control import AgentStatus, SyncStatus
from scanner_agent.outbox import BACKLOG_STATES, RowState, reason_label
from scanner_agent.times import age, parse_time, zone_name
from scanner_agent.times import clock as _clock

VERDICT_STYLE = {
    "accepted": ("OK", "bold green"),
    "invalid": ("INVALID", "bold white on red"),
    "duplicate": ("DUPLICATE", "bold black on yellow"),
    "full": ("FULL", "bold white on magenta"),
    "error": ("ERROR", "bold white on magenta"),
}
RESULT_STYLE = {
    "accepted": "green",
    "duplicate": "yellow",
    "rejected": "bold red",
    "removed": "dim strike",
    "pending": "cyan",
    "held": "cyan",
    "in_flight": "blue",
    "quarantined": "bold white on red",
}
LINK_STYLE = {
    "online": "bold green",
    "degraded": "bold yellow",
    "offline": "bold red",
    "auth_failed": "bold white on red",
    "disabled": "dim",
}


REASON_SHORT = {
    "duplicate scan": "duplicate",
    "a product barcode, not a trace code": "product EAN",
    "malformed gs1 code": "bad GS1",
    "invalid GTIN check digit": "GTIN check",
    "empty scan": "empty",
    "unreadable scan": "unreadable",
    "not a trace code": "not a code",
    "not a recognised trace code": "unknown code",
    "drug trace code must be 20 digits": "cn20 length",
    "20 digits not starting with 8": "cn20 not 8…",
    "too long": "too long",
    "outbox full": "outbox full",
    "code not registered on the platform": "unregistered",
    "refused by the sink": "sink refused",
    "no bill open": "no bill open",
}
"""Every refusal reason's label (``outbox.reason_label``) as a table column shows it, at most
:data:`REASON_CELLS` cells.  The one place the abbreviations are defined: the line under a table
spells the selected row's reason out in full beside its label."""
REASON_CELLS = 12
_TAKES_ONLY = re.compile(r"^(?P<platform>.+?) takes only ")
CODE_CELLS = 24
"""A code column's width: a cn20 code whole, a GS1 code's product and serial ends."""


def elide_middle(text: str, cells: int) -> str:
    """``text`` in at most ``cells`` terminal cells, its middle replaced by ``…``.

    A code keeps both ends: ``(01)06901234…2(21)A1B2C3`` still shows the
    product it starts with and the serial it ends with.
    """
    if cell_len(text) <= cells:
        return text
    room = cells - 1
    head = ""
    for ch in text:
        if cell_len(head + ch) > (room + 1) // 2:
            break
        head += ch
    tail = ""
    for ch in reversed(text[len(head) :]):
        if cell_len(head) + cell_len(ch + tail) > room:
            break
        tail = ch + tail
    return f"{head}…{tail}"


def elide_end(text: str, cells: int) -> str:
    """``text`` in at most ``cells`` cells, cut at the end with ``…`` (a product name)."""
    if cell_len(text) <= cells:
        return text
    out = ""
    for ch in text:
        if cell_len(out + ch) > cells - 1:
            break
        out += ch
    return out + "…"


def reason_short(reason: str | None) -> str:
    """A refusal reason as its column label (:data:`REASON_SHORT`, else its label cut to fit)."""
    if not reason:
        return ""
    label = reason_label(reason)
    takes = _TAKES_ONLY.match(label)
    if takes:  # "码上放心 takes only 20-digit trace codes": a code this sink cannot send
        return elide_end(f"not {takes['platform']}", REASON_CELLS)
    return REASON_SHORT.get(label) or elide_end(label, REASON_CELLS)


def reason_full(reason: str | None) -> str:
    """``bad GS1 = malformed gs1 code: ai (17): …``: the label and the whole reason."""
    if not reason:
        return ""
    short = reason_short(reason)
    return reason if short == reason else f"{short} = {reason}"


def clock(at: str | None, tz: tzinfo | None) -> str:
    """``HH:MM:SS`` of an ISO 8601 time in ``tz`` (local when ``None``), under a :func:`zone` heading."""
    return _clock(at, tz)


def zone(tz: tzinfo | None) -> str:
    """The zone the TUI shows times in, as its time columns and lines name it (``CST``)."""
    return zone_name(datetime.now(UTC).astimezone(tz))


def time_heading(tz: tzinfo | None) -> str:
    """``time CST``: the heading of a time column, so every time on screen has its zone."""
    return f"time {zone(tz)}"


def _with_zone(time_of_day: str, zone_name: str) -> str:
    """``16:30:01 CST``; ``-`` stays ``-`` (no time, no zone)."""
    return time_of_day if time_of_day == "-" else f"{time_of_day} {zone_name}"


def ago(at: str | None, now: float) -> str:
    """An ISO 8601 time as ``12s ago`` / ``3m 5s ago`` (:func:`scanner_agent.times.age`) or ``-``."""
    moment = parse_time(at)
    if moment is None:
        return "-"
    return age(max(0.0, now - moment.timestamp()))


def _num(n: int, style: str = "") -> Text:
    return Text(str(n), style=style, justify="right")


def verdict_text(verdict: str) -> Text:
    """A scan verdict as a coloured label."""
    label, style = VERDICT_STYLE.get(verdict, (verdict.upper(), "bold"))
    return Text(label, style=style)


def result_text(scan: dict[str, Any]) -> Text:
    """A bill scan's row state as a coloured label (a delivered one: the service's verdict)."""
    key = str(scan.get("state", ""))
    if key == "delivered" and scan.get("result"):
        key = str(scan["result"])
    return Text(key.replace("_", " "), style=RESULT_STYLE.get(key, ""))


def bill_progress(view: dict[str, Any] | None, *, lead: str = "  ", kind: bool = True) -> Text:
    """The open bill for the status line: ``  SO-1 销售出库 11/20 +1 unexpected``.

    Progress counts only what the expected list asks for: a product not on it,
    and units beyond a product's expected count, are shown apart as unexpected.
    A bill that is no longer open is not "the bill" any more: ``  no bill open``.
    """
    if view is None or view["bill"]["state"] != "open":
        return Text(f"{lead}no bill open", style="dim")
    b = view["bill"]
    out = Text(f"{lead}{b['number']} {b['type_zh'] + ' ' if kind else ''}", style="bold cyan")
    expected = sum(int(ln["expected"]) for ln in view["lines"])
    unexpected = sum(int(ln["extra"]) for ln in view["lines"])
    if expected:
        done = sum(min(int(ln["scanned"]), int(ln["expected"])) for ln in view["lines"])
        out.append(f"{done}/{expected}", "bold green" if done == expected else "bold cyan")
    else:
        out.append(f"{b['totals']['units']} units", "bold cyan")
    if expected and unexpected:
        out.append(f" +{unexpected} unexpected", "bold yellow")
    return out


def scan_summary(scan: dict[str, Any], tz: tzinfo | None) -> Text:
    """A bill scan as a dialog names it: time with zone, code, product, units."""
    at = clock(scan.get("scanned_at"), tz)
    product = scan.get("name") or scan.get("product") or "unknown product"
    units = f"  carton of {scan['units']}" if scan.get("carton") else ""
    return Text.assemble(
        (f"#{scan['seq']}  ", "dim"),
        f"{_with_zone(at, zone(tz))}  ",
        (str(scan.get("code") or ""), "bold"),
        "\n",
        str(product),
        units,
    )


def scan_detail(scan: dict[str, Any], *, removed: str | None = None) -> Text:
    """The line under a table for its selected scan: nothing cut, nothing abbreviated.

    The reason comes first (it is what the clerk selected the row for), then
    the whole code, its product and bill.  ``removed``: why it was taken off.
    """
    out = Text()
    reason = scan.get("reason")
    if removed is not None:
        out.append(f"removed: {removed}  ", "bold")
    elif reason:
        out.append(f"{reason_full(str(reason))}  ", "bold")
    out.append(str(scan.get("code") or ""), "bold")
    if scan.get("scheme"):
        out.append(f" ({scan['scheme']})", "dim")
    product = scan.get("name") or scan.get("product") or ""
    if product:
        out.append(f"  {product}")
        if scan.get("product") and scan.get("name"):
            out.append(f" {scan['product']}", "dim")
    if scan.get("carton"):
        out.append(f"  carton of {scan.get('units')}")
    if scan.get("bill"):
        out.append(f"  bill {scan['bill']}", "dim")
    return out


def state_counts(counts: Mapping[str, Any], *, owed: bool | None = None, zeros: bool = True) -> str:
    """Rows per row state as ``pending 2  held 1  in flight 0 ...``, in the outbox's order.

    ``owed`` picks the backlog's states (``True``) or the others (``False``);
    ``zeros=False`` leaves out states with no rows.
    """
    backlog = {s.value for s in BACKLOG_STATES}
    return "  ".join(
        f"{k.replace('_', ' ')} {v}"
        for k, v in counts.items()
        if (owed is None or (k in backlog) == owed) and (zeros or v)
    )


class StreamView(Vertical):
    """Every scan as it happens, newest at the bottom, bounded."""

    def __init__(self, *, max_rows: int, tz: tzinfo | None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_rows = max_rows
        self.tz = tz
        self._keys: list[Any] = []
        self._events: dict[Any, dict[str, Any]] = {}
        self.total = 0
        """Scans seen since the TUI started."""

    def compose(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(id="stream-table", cursor_type="row", zebra_stripes=True)
        heading = time_heading(self.tz)
        table.add_column(heading, width=max(8, len(heading)))
        table.add_column("code", width=CODE_CELLS)
        table.add_column("product", width=14)
        table.add_column("result", width=9)
        table.add_column("reason / bill")
        yield table
        yield Static(id="stream-detail", classes="row-detail")

    def add(self, events: Iterable[dict[str, Any]]) -> None:
        """Append scan events; the oldest rows go once there are ``max_rows``."""
        table = self.query_one("#stream-table", DataTable)
        added = 0
        for ev in events:
            self.total += 1
            product = ev.get("name") or ev.get("product") or ""
            units = f" x{ev.get('units')}" if ev.get("carton") else ""
            reason = ev.get("reason")
            detail = reason_short(reason) if reason else str(ev.get("bill") or "")
            key = table.add_row(
                clock(ev.get("at"), self.tz),
                elide_middle(str(ev.get("code") or ""), CODE_CELLS),
                elide_end(str(product), 14 - cell_len(units)) + units,
                verdict_text(str(ev.get("verdict", ""))),
                detail,
            )
            self._keys.append(key)
            self._events[key] = ev
            added += 1
        excess = len(self._keys) - self.max_rows
        if excess > 0:
            for key in self._keys[:excess]:
                table.remove_row(key)
                self._events.pop(key, None)
            del self._keys[:excess]
        if added:
            table.move_cursor(row=table.row_count - 1, animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Spell the selected scan out: whole code, scheme, product, full reason."""
        ev = self._events.get(event.row_key)
        self.query_one("#stream-detail", Static).update(scan_detail(ev) if ev else "")

    @property
    def rows(self) -> int:
        """Rows shown now."""
        return len(self._keys)


class BillPane(Vertical):
    """The current bill: summary, progress per product, latest scans with results."""

    def __init__(self, *, tz: tzinfo | None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tz = tz
        self.view: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="bill-summary")
        lines: DataTable[Any] = DataTable(id="bill-lines", cursor_type="row", zebra_stripes=True)
        lines.add_column("product", width=14)
        lines.add_column("name", width=18)
        lines.add_column("expected", width=8)
        lines.add_column("scanned", width=8)
        lines.add_column("missing", width=8)
        lines.add_column("extra", width=6)
        yield lines
        scans: DataTable[Any] = DataTable(id="bill-scans", cursor_type="row")
        scans.add_column("seq", width=6)
        heading = time_heading(self.tz)
        scans.add_column(heading, width=max(8, len(heading)))
        scans.add_column("code", width=CODE_CELLS)
        scans.add_column("units", width=5)
        scans.add_column("result", width=9)
        scans.add_column("reason")
        yield scans
        yield Static(id="bill-detail", classes="row-detail")

    def show(self, view: dict[str, Any] | None, *, hint: str = "") -> None:
        """Draw a ``bill.show`` result (``None``: no bill yet)."""
        self.view = view
        summary = self.query_one("#bill-summary", Static)
        lines = self.query_one("#bill-lines", DataTable)
        scans = self.query_one("#bill-scans", DataTable)
        cursor = scans.cursor_row
        lines.clear()
        scans.clear()
        if view is None:
            summary.update(Text.assemble(("No bill open. ", "bold"), hint))
            return
        b = view["bill"]
        t = b["totals"]
        state = str(b["state"])
        state_style = {
            "open": "bold cyan",
            "delivered": "bold green",
            "partly_rejected": "bold white on red",
            "closed": "bold yellow",
            "empty": "dim",
        }.get(state, "bold")
        kind = f"{b['type']} {b['type_zh']}" if b.get("type") else b["type_zh"]
        parties = f"{b['from_party'] or '-'} → {b['to_party'] or '-'}"
        summary.update(
            Text.assemble(
                (b["number"], "bold"),
                f"  {kind}  {parties}  ",
                (state.replace("_", " ").upper(), state_style),
                "\n",
                f"scans {t['scans']} cartons {t['cartons']} units {t['units']} │ ",
                state_counts({s.value: t.get(s.value, 0) for s in RowState}, zeros=False)
                or "no scans",
                f" (dup {t['duplicate']})" if t["duplicate"] else "",
            )
        )
        for ln in view["lines"]:
            missing = _num(ln["missing"], "bold red" if ln["missing"] else "green")
            extra = _num(ln["extra"], "bold yellow" if ln["extra"] else "")
            # A product not on the expected list is not "0 expected": it is unexpected.
            expected = _num(ln["expected"]) if ln["expected"] else Text("—", justify="right")
            lines.add_row(
                elide_middle(str(ln["product"]), 14),
                elide_end(str(ln["name"]), 18),
                expected,
                _num(ln["scanned"]),
                missing,
                extra,
            )
        why = {r["seq"]: r["reason"] for r in view.get("removals", [])}
        for s in view["scans"]:
            reason = why.get(s["seq"], "") if s["state"] == "removed" else (s.get("reason") or "")
            scans.add_row(
                str(s["seq"]),
                clock(s["scanned_at"], self.tz),
                elide_middle(str(s["code"]), CODE_CELLS),
                f"x{s['units']}" if s["carton"] else "1",
                result_text(s),
                reason_short(reason) if s["state"] != "removed" else elide_end(reason, 16),
                key=str(s["seq"]),
            )
        if scans.row_count:
            scans.move_cursor(row=min(cursor, scans.row_count - 1), animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Spell the selected scan out under the table."""
        if event.data_table.id != "bill-scans" or self.view is None:
            return
        scan = self.selected_scan()
        if scan is None:
            self.query_one("#bill-detail", Static).update("")
            return
        removed = None
        if scan["state"] == "removed":
            why = {r["seq"]: r["reason"] for r in self.view.get("removals", [])}
            removed = str(why.get(scan["seq"], ""))
        self.query_one("#bill-detail", Static).update(scan_detail(scan, removed=removed))

    def selected_scan(self) -> dict[str, Any] | None:
        """The scan under the cursor of the scans table."""
        if self.view is None:
            return None
        scans = self.query_one("#bill-scans", DataTable)
        if not scans.row_count:
            return None
        row = scans.cursor_row
        items = self.view["scans"]
        return items[row] if 0 <= row < len(items) else None


class DevicesView(Vertical):
    """Each source and its device: connected, model, last scan, errors."""

    def compose(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(id="devices-table", cursor_type="row")
        table.add_column("source", width=18)
        table.add_column("device", width=13)
        table.add_column("model", width=13)
        table.add_column("state", width=9)
        table.add_column("last scan", width=10)
        table.add_column("errors")
        yield table
        yield Static(id="devices-note")

    def show(self, status: AgentStatus, now: float) -> None:
        """Draw the sources of a ``status`` result."""
        table = self.query_one("#devices-table", DataTable)
        table.clear()
        devices = {d.source: d for d in status.devices}
        last = status.last_scan_at
        for name in status.sources:
            d = devices.get(name)
            if d is None:
                state = Text("software", style="dim")
                device, model, errors, seen = "", "", "", last.get(name)
            else:
                up = d.connected
                state = Text("connected" if up else "OFFLINE", "green" if up else "bold red")
                device, model = d.device or "", d.model or ""
                errors = str(d.errors)
                seen = d.last_scan_at or last.get(name)
            table.add_row(
                elide_middle(name, 18),
                elide_middle(device, 13),
                elide_end(model, 13),
                state,
                ago(seen, now),
                Text(errors, justify="right"),
            )
        offline = [d for d in devices.values() if not d.connected]
        note = self.query_one("#devices-note", Static)
        if offline:
            why = "; ".join(f"{d.source}: {d.reason or 'offline'}" for d in offline)
            note.update(Text(why, style="bold red"))
        else:
            note.update("")


class LinkView(Vertical):
    """The link to the trace service and the outbox queue."""

    def __init__(self, *, tz: tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tz = tz

    def compose(self) -> ComposeResult:
        yield Static(id="link-summary")
        table: DataTable[Any] = DataTable(id="rejections-table", cursor_type="row")
        heading = f"refused {zone(self.tz)}"
        table.add_column(heading, width=max(8, len(heading)))
        table.add_column("code", width=CODE_CELLS)
        table.add_column("reason")
        yield table

    def show(self, status: AgentStatus, now: float, tz: tzinfo | None) -> None:
        """Draw link and queue from a ``status`` result."""
        sync = status.sync or SyncStatus()
        link, queue, error = status.link, status.queue, status.last_error
        current = bool(error and status.last_error_current)
        retry_at = parse_time(sync.retry_at)
        retry = f"   retry in {max(0.0, retry_at.timestamp() - now):.0f} s" if retry_at else ""
        tz_name = zone(tz)
        parts: list[Any] = [
            ("link      ", "dim"),
            (link.upper(), LINK_STYLE.get(link, "bold")),
            f"   in flight {sync.in_flight} batches{retry}\n",
            ("backlog   ", "dim"),
            f"{status.backlog}  ({state_counts(queue, owed=True)})   "
            f"oldest {_with_zone(clock(status.oldest_pending_at, tz), tz_name)}\n",
            ("outbox    ", "dim"),
            state_counts(queue, owed=False) + "\n",
            ("sent      ", "dim"),
            f"delivered {sync.delivered}  duplicate {sync.duplicate}  "
            f"rejected {sync.rejected}  last ok {ago(sync.last_success_at, now)}\n",
            ("error     ", "dim"),
            (str(error or "-"), "red" if current else "dim"),
        ]
        if error:
            at = _with_zone(clock(status.last_error_at, tz), tz_name)
            parts.append((f"  at {at}, " + ("current" if current else "past"), "dim"))
        self.query_one("#link-summary", Static).update(Text.assemble(*parts))
        table = self.query_one("#rejections-table", DataTable)
        table.clear()
        for r in reversed(sync.recent_rejections):
            table.add_row(clock(r.at, tz), elide_middle(r.code, CODE_CELLS), r.reason)


Clock = Callable[[], float]
