"""The dispatch terminal: one dock's screen, attached to a running agent, and the app around it.

:class:`DispatchScreen` holds everything of one dock (its views, its workers,
its keys), so the docks overview (:mod:`scanner_agent.tui._docks`) keeps one
screen per dock alive and switches between them at once; :class:`DispatchApp`
is the app of a single dock.

The screen never blocks the loop on the agent.  Worker threads talk to it
(:class:`~scanner_agent.tui._agent.AgentLink`) and post messages back:

* the event worker holds a subscription, puts scan events into a bounded
  buffer and posts one coalescing :class:`ScansArrived` signal, so a flood of
  scans costs one redraw per frame, not one per scan; it reconnects by itself
  when the agent restarts;
* the poll worker fetches ``status`` (and the current bill) once a second,
  or at once when something changed;
* the command worker runs the operator's commands one after another; they
  come back as :class:`CommandDone` / :class:`CommandFailed`.

Three long-lived threads, whatever the scan rate: work is never piled up in
new threads while the agent is slow.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable, Iterable
from datetime import tzinfo
from pathlib import Path, PurePath
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Footer, Static

from scanner_agent.control import AgentStatus, ControlError, ControlUncertain, RemoteError
from scanner_agent.tui._agent import AgentLink, EventSource
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
from scanner_agent.tui._views import (
    LINK_STYLE,
    BillPane,
    DevicesView,
    LinkView,
    StreamView,
    bill_progress,
    scan_summary,
    verdict_text,
)

VIEWS = ("stream", "bill", "devices", "link")
BAD_VERDICTS = frozenset({"invalid", "duplicate", "full", "error"})
ALARM_HOLD_S = 60.0
"""A bad scan's red bar stays up until the next good scan, or this long."""


class DispatchScreen(Screen[None]):
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
        super().__init__()
        self.agent = agent
        self.bell_on = bell
        self.tz = tz
        self.clock = clock
        self.blink = blink
        self.poll_s = poll_s
        self.reconnect_s = reconnect_s
        self.stream_rows = stream_rows
        self.exit_when = exit_when
        self.docks = docks
        self.connected = False
        self.disconnect_reason = "connecting…"
        self.status: AgentStatus | None = None
        """The latest ``status`` (None before the first)."""
        self.bill_number: str | None = None
        """The bill shown: the open one, else the last one seen (its results keep arriving)."""
        self.bill_view: dict[str, Any] | None = None
        self.last_scan: dict[str, Any] | None = None
        self.dropped = 0
        self._buffer: collections.deque[dict[str, Any]] = collections.deque(maxlen=stream_rows)
        self._signalled = False
        self._stopping = threading.Event()
        self._stream: EventSource | None = None
        self._wake = threading.Event()
        self._commands: queue.SimpleQueue[tuple[str, str, dict[str, Any]] | None] = (
            queue.SimpleQueue()
        )
        self._last_bill_fetch = 0.0
        self._last_scan_mono = 0.0

    # -- layout --------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="status-line")
        yield Static(id="alarm", classes="-idle")
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
        self._event_loop()
        self._poll_loop()
        self._command_loop()
        if self.exit_when is not None:
            self.set_interval(0.2, self._check_exit)

    def on_unmount(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._commands.put(None)
        stream = self._stream
        if stream is not None:
            stream.close()
        self.agent.close()

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

    # -- workers -----------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="events", exit_on_error=False)
    def _event_loop(self) -> None:
        """Hold a subscription; reconnect after the agent goes away."""
        while not self._stopping.is_set():
            stream: EventSource | None = None
            try:
                stream = self.agent.events()
                hello = self.agent.call("hello")
            except ControlError as exc:
                if stream is not None:
                    stream.close()
                self.post_message(Disconnected(str(exc)))
                self._stopping.wait(self.reconnect_s)
                continue
            self._stream = stream
            if self._stopping.is_set():  # the app closed while this stream was opening
                stream.close()
                return
            self.post_message(Connected(hello))
            try:
                for event in stream:
                    kind = event.get("event")
                    if kind == "scan":
                        self._buffer.append(event)
                        if not self._signalled:
                            self._signalled = True
                            self.post_message(ScansArrived())
                    elif kind == "bill":
                        self.post_message(BillChanged(event))
                    elif kind == "dropped":
                        self.dropped += int(event.get("count", 0))
            except ControlError as exc:
                if not self._stopping.is_set():
                    self.post_message(Disconnected(str(exc)))
            finally:
                stream.close()
                self._stream = None
            self._stopping.wait(self.reconnect_s)

    def _poll(self) -> None:
        """Refresh status and the bill now."""
        self._wake.set()

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def _poll_loop(self) -> None:
        """``status`` and ``bill.show`` every ``poll_s``, or at once when woken."""
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.post_message(StatusUpdated(AgentStatus.from_json(self.agent.call("status"))))
                number = self.bill_number
                if number:
                    view = self.agent.call("bill.show", number=number, scans=100)
                    if number == self.bill_number:
                        self.post_message(BillUpdated(view))
            except RemoteError as exc:
                if exc.code == "not_found":
                    self.post_message(BillUpdated(None))
            except ControlError:
                pass  # the event worker reports the outage
            self._wake.wait(self.poll_s)

    def _command(self, what: str, cmd: str, args: dict[str, Any]) -> None:
        self._commands.put((what, cmd, args))

    @work(thread=True, exclusive=True, group="commands", exit_on_error=False)
    def _command_loop(self) -> None:
        """The operator's commands, in order."""
        while True:
            item = self._commands.get()
            if item is None or self._stopping.is_set():
                return
            what, cmd, args = item
            try:
                if cmd == "@import":
                    args = self._read_import(args)
                    cmd = "bill.import"
                result = self.agent.call(cmd, **args)
            except ControlUncertain as exc:
                self.post_message(CommandFailed(what, str(exc), uncertain=True))
                continue
            except (ControlError, OSError, UnicodeDecodeError) as exc:
                self.post_message(CommandFailed(what, str(exc)))
                continue
            self.post_message(CommandDone(what, result))

    def _read_import(self, args: dict[str, Any]) -> dict[str, Any]:
        path = str(args["path"])
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ControlError(f"Failed to read {path!r}: {exc}") from exc
        out: dict[str, Any] = {"csv": text, "kind": args["kind"]}
        if args.get("number"):
            out["number"] = args["number"]
        return out

    def _import(self, path: str, kind: str) -> None:
        args = {"path": path, "kind": kind}
        if kind == "expected" and self.bill_number:
            args["number"] = self.bill_number
        self._command("import", "@import", args)

    def lookup(self, code: str) -> None:
        """Run a code lookup (the search dialog shows the answer)."""
        self._command("lookup", "lookup", {"code": code})

    # -- messages ------------------------------------------------------------------

    def _live(self) -> bool:
        """Whether the main views are there to draw on (not while starting or exiting)."""
        return bool(self.is_running and self.query(StreamView))

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
        st = self.status
        line = Text()
        if self.connected and st:
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
        if self.connected:
            line.append(f"  backlog {st.backlog if st else 0}")
            line.append_text(bill_progress(self.bill_view))
        if self.bell_on:
            line.append("  bell", "dim")
        self.query_one("#status-line", Static).update(line)

    def _draw_alarm(self) -> None:
        bar = self.query_one("#alarm", Static)
        alarms = self.status.alarms if self.status else ()
        scan = self.last_scan
        fresh = time.monotonic() - self._last_scan_mono < ALARM_HOLD_S
        if not self.connected:
            kind = "-down"
            text = Text(f"NO AGENT: reconnecting…\n{self.disconnect_reason}", style="bold")
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
            bar.set_class(cls == kind, cls)
        bar.update(text)

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


class DispatchApp(App[None]):
    """One dock's dispatch terminal: the app around its :class:`DispatchScreen`."""

    CSS_PATH: ClassVar[str | PurePath | list[str | PurePath] | None] = ["global.tcss", "app.tcss"]
    TITLE = "scanner-agent"
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        agent: AgentLink,
        *,
        tz: tzinfo | None = None,
        blink: bool = True,
        **options: Any,
    ) -> None:
        """Attach to ``agent``; ``tz``, ``blink`` and ``options`` as :class:`DispatchScreen`'s."""
        super().__init__()
        self.tz = tz
        """The zone times are shown in (dialogs read it from the app)."""
        self.blink = blink
        self.dispatch = DispatchScreen(agent, tz=tz, blink=blink, **options)

    def get_default_screen(self) -> Screen[Any]:
        """The dock's screen is the app's first."""
        return self.dispatch

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The palette: every key's action, plus Textual's own."""
        yield from super().get_system_commands(screen)
        yield from self.dispatch.system_commands()
