"""One dock's full view: live scans, the open bill, devices and the link, and the clerk's keys.

The screen draws what its :class:`~scanner_agent.tui._agent_screen.AgentScreen`
workers bring, and runs the bill commands through them.  The docks overview
keeps one per dock alive (:mod:`scanner_agent.tui._docks_screen`), so going
back to a dock is immediate; :class:`~scanner_agent.tui._app.DispatchApp` is the
app of a single dock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import tzinfo
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.widgets import ContentSwitcher, DataTable, Footer

from scanner_agent.tui._agent import AgentLink
from scanner_agent.tui._agent_screen import AgentScreen
from scanner_agent.tui._bill_pane import BillPane
from scanner_agent.tui._devices_view import DevicesView
from scanner_agent.tui._format import (
    BAD_VERDICTS,
    scan_summary,
)
from scanner_agent.tui._link_view import LinkView
from scanner_agent.tui._messages import (
    BillChanged,
    BillUpdated,
    CommandDone,
    CommandFailed,
    Connected,
    Disconnected,
    ScansArrived,
    StatusUpdated,
)
from scanner_agent.tui._modals import (
    ConfirmScreen,
    OpenBillScreen,
    PathScreen,
    ReasonScreen,
    SearchScreen,
)
from scanner_agent.tui._status_bar import AlarmBar, StatusLine
from scanner_agent.tui._stream_view import StreamView

VIEWS = ("stream", "bill", "devices", "link")
ALARM_HOLD_S = 60.0
"""A bad scan's red bar stays up until the next good scan, or this long."""


class DispatchScreen(AgentScreen):
    """Live scans, the open bill, devices and the link, with keys for every bill command."""

    # The footer's order is its priority at 80 columns: Quit first, then what the clerk does
    # on this view; the four view keys share one entry ("1-4 Views").
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "app.quit", "Quit"),
        Binding("o", "open_bill", "Open"),
        Binding("c", "close_bill", "Close"),
        Binding("u", "undo", "Undo"),
        Binding("x,delete", "remove", "Remove"),
        Binding("slash", "search", "Find"),
        Binding("i", "import_expected", "Import"),
        Binding("b", "toggle_bell", "Bell"),
        Binding("1", "view('stream')", "Views", key_display="1-4"),
        Binding("2", "view('bill')", "Bill", show=False),
        Binding("3", "view('devices')", "Devices", show=False),
        Binding("4", "view('link')", "Link", show=False),
        Binding("escape", "to_docks", "Docks"),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Remove (x) belongs to the bill view: elsewhere it is not offered in the footer.

        Esc goes back to the docks overview only when the screen is one of its docks.
        """
        if action == "to_docks":
            return self.docks
        if action == "remove" and self.is_running and self.query(ContentSwitcher):
            return self.query_one(ContentSwitcher).current == "bill"
        return True

    def __init__(
        self,
        agent: AgentLink,
        *,
        bell: bool = False,
        tz: tzinfo | None = None,
        clock: Callable[[], float] = time.time,
        blink: bool = True,
        poll_s: float = 2.0,
        reconnect_s: float = 1.0,
        stream_rows: int = 200,
        exit_when: threading.Event | None = None,
        docks: bool = False,
    ) -> None:
        """Attach to ``agent``.

        ``tz`` and ``clock`` fix how times are shown (tests pin them);
        ``blink`` off keeps input cursors still for snapshots; ``exit_when``
        set by another thread makes the app quit (the demo's end);
        ``docks``: one dock of the docks overview, which Esc goes back to.
        """
        super().__init__(agent, poll_s=poll_s, reconnect_s=reconnect_s, stream_rows=stream_rows)
        self.bell_on = bell
        self.tz = tz
        self.clock = clock
        self.blink = blink
        self.stream_rows = stream_rows
        self.exit_when = exit_when
        self.docks = docks
        self.last_scan: dict[str, Any] | None = None
        self._last_bill_fetch = 0.0
        self._last_scan_mono = 0.0

    # -- layout --------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status-line")
        yield AlarmBar(id="alarm", classes="-idle")
        with ContentSwitcher(initial="stream", id="views"):
            yield StreamView(max_rows=self.stream_rows, tz=self.tz, id="stream")
            yield BillPane(tz=self.tz, id="bill")
            yield DevicesView(id="devices")
            yield LinkView(tz=self.tz, id="link")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._draw_status_line()
        self._draw_alarm()
        self.query_one(BillPane).show(None, hint=self._no_bill_hint())
        self.start_workers()
        if self.exit_when is not None:
            self.set_interval(0.2, self._check_exit)

    def on_unmount(self) -> None:
        self.stop_workers()

    def _check_exit(self) -> None:
        if self.exit_when is not None and self.exit_when.is_set():
            self.app.exit()

    def system_commands(self) -> Iterable[SystemCommand]:
        """The palette's entries of this screen: every key's action."""
        yield SystemCommand(
            "Open a bill", "Start a bill; scans go to it (o)", self.action_open_bill
        )
        yield SystemCommand("Close the bill", "Hand the bill to sync (c)", self.action_close_bill)
        yield SystemCommand("Undo the last scan", "Take it off the bill (u)", self.action_undo)
        yield SystemCommand("Remove the selected scan", "On the bill view (x)", self.action_remove)
        yield SystemCommand("Search a code", "A code's history (/)", self.action_search)
        yield SystemCommand(
            "Import the expected list", "CSV for the open bill (i)", self.action_import_expected
        )
        yield SystemCommand(
            "Import pack ratios", "CSV of carton -> units", self.action_import_packs
        )
        yield SystemCommand("Toggle the bell", "Ring on a bad scan (b)", self.action_toggle_bell)
        for name in VIEWS:
            yield SystemCommand(f"Show {name}", f"Switch to the {name} view", self._switcher(name))

    def _switcher(self, name: str) -> Callable[[], None]:
        return lambda: self.action_view(name)

    # -- messages ------------------------------------------------------------------

    def _live(self) -> bool:
        """Whether the main views are there to draw on: not while starting, nor once the app
        is shutting down (its widgets go one by one while the agent's threads still report)."""
        return bool(self.app.is_running and self.is_running and self.query(StreamView))

    def on_connected(self, message: Connected) -> None:
        if not self._live():
            return
        self.connected = True
        self.sub_title = str(message.hello.get("device_id", ""))
        self._draw_status_line()
        self._draw_alarm()
        self._poll()

    def on_disconnected(self, message: Disconnected) -> None:
        if not self._live():
            return
        self.connected = False
        self.disconnect_reason = message.reason
        self._draw_status_line()
        self._draw_alarm()

    def on_scans_arrived(self, _message: ScansArrived) -> None:
        self._signalled = False
        if not self._live():
            return
        events = []
        while self._buffer:
            events.append(self._buffer.popleft())
        if not events:
            return
        self.query_one(StreamView).add(events)
        self.last_scan = events[-1]
        self._last_scan_mono = time.monotonic()
        if self.bell_on and any(e.get("verdict") in BAD_VERDICTS for e in events):
            self.app.bell()
        self._draw_alarm()
        bills = {e.get("bill") for e in events}
        now = time.monotonic()
        if self.bill_number in bills and now - self._last_bill_fetch > 0.5:
            self._last_bill_fetch = now
            self._poll()

    def on_bill_changed(self, message: BillChanged) -> None:
        event = message.event
        if event.get("what") == "opened":
            self.bill_number = str(event["bill"])
        self._poll()

    def on_status_updated(self, message: StatusUpdated) -> None:
        if not self._live():
            return
        status = message.status
        self.status = status
        open_bills = [b.number for b in status.bills]
        if open_bills and self.bill_number not in open_bills:
            self.bill_number = open_bills[0]
            self._poll()
        now = self.clock()
        self.query_one(DevicesView).show(status, now)
        self.query_one(LinkView).show(status, now, self.tz)
        self._draw_status_line()
        self._draw_alarm()

    def on_bill_updated(self, message: BillUpdated) -> None:
        if not self._live():
            return
        self.bill_view = message.view
        self.query_one(BillPane).show(message.view, hint=self._no_bill_hint())
        self._draw_status_line()

    def on_command_done(self, message: CommandDone) -> None:
        r = message.result
        if message.what == "lookup":
            if isinstance(self.app.screen, SearchScreen):
                self.app.screen.show(r)
            return
        if message.what == "open":
            self.bill_number = str(r["number"])
            self.notify(f"Bill {r['number']} open: {r['type']} {r['type_zh']}", title="Opened")
            if r.get("warning"):
                self.notify(str(r["warning"]), severity="warning", timeout=10)
            self.action_view("bill")
        elif message.what == "close":
            self.notify(
                f"Bill {r['number']} closed: {r['totals']['scans']} scans handed to sync",
                title="Closed",
            )
        elif message.what in ("undo", "remove"):
            self.notify(f"Removed {r['code']} from {r['bill']}: {r['reason']}", title="Removed")
        elif message.what == "import":
            if r.get("kind") == "packs":
                self.notify(f"{r['ratios']} pack ratios, {r['relations']} relations imported")
            else:
                self.notify(f"Expected list of {r['bill']}: {r['products']} products")
        self._poll()

    def on_command_failed(self, message: CommandFailed) -> None:
        if message.what == "lookup" and isinstance(self.app.screen, SearchScreen):
            self.app.screen.show_error(message.message)
            return
        if message.uncertain:
            # Not "failed": the agent got it and went away before answering.  Say so, and
            # refresh so the bill on screen shows whether it was done.
            self.notify(
                f"The agent restarted while doing it: it may have been done. "
                f"Check the bill before you repeat it.\n{message.message}",
                title=f"{message.what}: not confirmed",
                severity="warning",
                timeout=20,
            )
            self._poll()
            return
        self.notify(message.message, title=f"{message.what} failed", severity="error", timeout=8)

    # -- drawing -------------------------------------------------------------------

    def _no_bill_hint(self) -> str:
        device = self.status.device_id if self.status else "this device"
        return f"Press o to open one. Until then scans go to the default bill of {device}."

    def _draw_status_line(self) -> None:
        self.query_one(StatusLine).draw(
            self.status, connected=self.connected, bill_view=self.bill_view, bell=self.bell_on
        )

    def _draw_alarm(self) -> None:
        fresh = time.monotonic() - self._last_scan_mono < ALARM_HOLD_S
        self.query_one(AlarmBar).draw(
            self.status,
            connected=self.connected,
            why_not=self.disconnect_reason,
            scan=self.last_scan,
            fresh=fresh,
        )

    # -- actions -------------------------------------------------------------------

    def action_view(self, name: str) -> None:
        """Show one of the views."""
        if name in VIEWS:
            self.query_one(ContentSwitcher).current = name
            self.refresh_bindings()
            if name == "bill":
                self.query_one("#bill-scans", DataTable).focus()
            else:
                tables = self.query_one(f"#{name}").query(DataTable)
                if tables:
                    tables.first().focus()

    def _open_bill(self) -> str | None:
        if self.bill_view and self.bill_view["bill"]["state"] == "open":
            return str(self.bill_view["bill"]["number"])
        return None

    def action_open_bill(self) -> None:
        """Ask for a number and type, then open the bill."""

        def done(args: dict[str, Any] | None) -> None:
            if args:
                self._command("open", "bill.open", args)

        self.app.push_screen(OpenBillScreen(), done)

    def action_close_bill(self) -> None:
        """Confirm, then close the open bill."""
        number = self._open_bill()
        if number is None or self.bill_view is None:
            self.notify("No bill is open.", severity="warning")
            return
        missing = sum(ln["missing"] for ln in self.bill_view["lines"])
        t = self.bill_view["bill"]["totals"]
        body = Text(f"{t['scans']} scans ({t['units']} units) go to the trace service.")
        if missing:
            body.append(f"\n{missing} units are still missing from the expected list.", "bold red")

        def done(yes: bool | None) -> None:
            if yes:
                self._command("close", "bill.close", {"number": number})

        self.app.push_screen(ConfirmScreen(f"Close bill {number}?", body, yes="Close"), done)

    def action_undo(self) -> None:
        """Ask why, naming the last scan on the open bill, then take exactly that one off."""
        number = self._open_bill()
        if number is None or self.bill_view is None:
            self.notify("No bill is open: nothing to undo.", severity="warning")
            return
        scan = next((s for s in self.bill_view["scans"] if s.get("state") != "removed"), None)
        if scan is None:
            self.notify(f"Nothing to undo: no scan is on {number}.", severity="warning")
            return

        def done(reason: str | None) -> None:
            if reason:
                # By seq, not "the last one": a scan arriving while the dialog was up is not
                # the one the clerk was shown and agreed to take off.
                args = {"number": number, "seq": scan["seq"], "reason": reason, "origin": "tui"}
                self._command("undo", "bill.remove", args)

        self.app.push_screen(
            ReasonScreen(
                f"Undo the last scan of {number}",
                detail=scan_summary(scan, self.tz),
                default="scanned by mistake",
            ),
            done,
        )

    def action_remove(self) -> None:
        """Ask why, then take the selected scan off the open bill."""
        number = self._open_bill()
        if number is None:
            self.notify("No bill is open.", severity="warning")
            return
        if self.query_one(ContentSwitcher).current != "bill":
            self.action_view("bill")
            self.notify("Pick the scan to remove, then press x.")
            return
        scan = self.query_one(BillPane).selected_scan()
        if scan is None or scan.get("state") == "removed":
            self.notify("Pick a scan that is on the bill.", severity="warning")
            return

        def done(reason: str | None) -> None:
            if reason:
                args = {"number": number, "seq": scan["seq"], "reason": reason, "origin": "tui"}
                self._command("remove", "bill.remove", args)

        self.app.push_screen(
            ReasonScreen(f"Remove a scan from {number}", detail=scan_summary(scan, self.tz)), done
        )

    def action_search(self) -> None:
        """Search a code's history."""
        self.app.push_screen(SearchScreen(self.lookup))

    def action_import_expected(self) -> None:
        """Import the open bill's expected list from a CSV file."""
        if self._open_bill() is None:
            self.notify("Open a bill first.", severity="warning")
            return

        def done(path: str | None) -> None:
            if path:
                self._import(path, "expected")

        self.app.push_screen(PathScreen("Import the expected list (CSV)"), done)

    def action_import_packs(self) -> None:
        """Import pack ratios (carton -> units) from a CSV file."""

        def done(path: str | None) -> None:
            if path:
                self._import(path, "packs")

        self.app.push_screen(PathScreen("Import pack ratios (CSV)"), done)

    def action_to_docks(self) -> None:
        """Back to the docks overview (this screen stays, and keeps up, for the next visit)."""
        self.app.pop_screen()

    def action_toggle_bell(self) -> None:
        """Ring the terminal bell on a bad scan, or stop."""
        self.bell_on = not self.bell_on
        self.notify(f"Bell {'on' if self.bell_on else 'off'}")
        self._draw_status_line()
