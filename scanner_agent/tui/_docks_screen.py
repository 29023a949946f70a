"""One clerk, several docks: the overview of several agents, from which each dock's full view opens.

Each dock is an agent reached on its control socket (a remote one through an
SSH-forwarded socket, ``docs/control.md``).  Per dock, one thread polls
``status`` and the open bill's progress; the overview table shows link,
backlog, open bill and progress, the last refusal and alarms.  The last
refusal is the agent's own (``AgentStatus.last_refusal``, kept across its
restarts), so a dock that refused a scan before the clerk looked shows it at
once.  Enter opens the selected dock's full
view (:class:`~scanner_agent.tui._dispatch_screen.DispatchScreen`), Esc there comes back
here.  Each dock's full view is made on its first visit and kept: switching
back to it is immediate (its workers never stopped), and the overview keeps
updating while a dock is shown.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from scanner_agent.control import AgentStatus, ControlError, RemoteError
from scanner_agent.tui._agent import AgentLink, join_threads, start_thread
from scanner_agent.tui._dispatch_screen import DispatchScreen
from scanner_agent.tui._format import (
    LINK_STYLE,
    bill_progress,
    clock,
    elide_middle,
    reason_short,
    zone,
)

DOCK_CELLS = 13
BILL_CELLS = 17
COLUMNS = (
    ("dock", DOCK_CELLS),
    ("link", 12),
    ("backlog", 7),
    ("open bill", BILL_CELLS),
    ("last refusal", 12),
    ("alarms", 6),
)
"""The overview's columns and their widths: with a cell's padding on each side, 79 cells, so
every one shows whole at 80 columns (the line under the table spells the selected dock out)."""


def bill_cell(view: dict[str, Any] | None) -> Text:
    """The open bill in :data:`BILL_CELLS` cells: its progress (``11/20``, and ``+N``
    unexpected) whole, its number cut in the middle to make room (``SO-2…001 11/20 +1``)."""
    full = bill_progress(view, lead="", kind=False)
    if full.cell_len <= BILL_CELLS or view is None or view["bill"]["state"] != "open":
        full.truncate(BILL_CELLS, overflow="ellipsis")
        return full
    number = str(view["bill"]["number"])
    progress = full[len(number) + 1 :]
    figure, _, rest = progress.plain.partition(" +")
    main = progress[: len(figure)]
    extra = f" +{rest.split(' ', 1)[0]}" if rest else ""
    room = BILL_CELLS - main.cell_len - len(extra) - 1
    out = Text(f"{elide_middle(number, max(room, 1))} ", style="bold cyan")
    out.append_text(main)
    out.append(extra, "bold yellow")
    out.truncate(BILL_CELLS, overflow="ellipsis")
    return out


@dataclass
class Dock:
    """What the overview knows of one dock."""

    name: str
    """Its socket path until the agent says its device id."""
    agent: AgentLink
    connected: bool = False
    problem: str = "connecting…"
    status: AgentStatus | None = None
    bill_view: dict[str, Any] | None = None


@dataclass
class DockChanged(Message):
    """A dock's state changed (drawn from the app's :class:`Dock` list)."""

    index: int

    def can_replace(self, message: Message) -> bool:
        """Only the latest state of a dock is drawn."""
        return isinstance(message, DockChanged) and message.index == self.index


class DocksScreen(Screen[None]):
    """The overview of several docks: one row each; Enter opens the selected dock."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "app.quit", "Quit"),
        Binding("enter", "open_dock", "Open dock", priority=True),
    ]

    def __init__(
        self,
        docks: list[tuple[str, AgentLink]],
        *,
        poll_s: float = 2.0,
        reconnect_s: float = 1.0,
        selected: int = 0,
        tz: tzinfo | None = None,
    ) -> None:
        """Watch ``docks`` (name, agent) from worker threads; ``selected``: the row first shown;
        ``tz``: the zone times are shown in (local when None; tests pin it)."""
        super().__init__()
        self.tz = tz
        self.docks = [Dock(name, agent) for name, agent in docks]
        self.dock_options: dict[str, Any] = {}
        """What each dock's :class:`DispatchScreen` is made with (set by the app)."""
        self.poll_s = poll_s
        self.reconnect_s = reconnect_s
        self.selected = selected
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def compose(self) -> ComposeResult:
        yield Static(
            Text.assemble(
                (" Docks ", "bold"),
                f"{len(self.docks)} agents   Enter: open a dock's full view (Esc there: back)",
            ),
            id="status-line",
        )
        table: DataTable[Any] = DataTable(id="docks-table", cursor_type="row", zebra_stripes=True)
        for label, width in COLUMNS:
            table.add_column(label, width=width)
        yield table
        yield Static(id="docks-detail", classes="row-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#docks-table", DataTable)
        for i, dock in enumerate(self.docks):
            table.add_row(*self._cells(dock), key=str(i))
            self._threads.append(start_thread(f"docks:{i}", functools.partial(self._poll_dock, i)))
        table.move_cursor(row=min(self.selected, len(self.docks) - 1), animate=False)
        table.focus()

    def on_unmount(self) -> None:
        self._stopping.set()
        for dock in self.docks:
            dock.agent.close()
        join_threads(self._threads)

    # -- workers -------------------------------------------------------------------

    def _poll_dock(self, index: int) -> None:
        """``status`` (and the open bill) of one dock every ``poll_s``."""
        dock = self.docks[index]
        while not self._stopping.is_set():
            try:
                status = AgentStatus.from_json(dock.agent.call("status"))
                bills = [b for b in status.bills if b.state == "open"]
                view = None
                if bills:
                    view = dock.agent.call("bill.show", number=bills[0].number, scans=0)
                dock.status, dock.bill_view = status, view
                dock.name = status.device_id or dock.name
                dock.connected, dock.problem = True, ""
            except RemoteError as exc:
                dock.problem = str(exc)
            except ControlError as exc:
                dock.connected, dock.problem = False, str(exc)
            self.post_message(DockChanged(index))
            self._stopping.wait(self.poll_s if dock.connected else self.reconnect_s)

    # -- drawing -------------------------------------------------------------------

    def _cells(self, dock: Dock) -> tuple[Text | str, ...]:
        st = dock.status
        if not dock.connected or st is None:
            link = Text("○ no agent", style="bold red")
            backlog, bill = Text(""), Text("")
        else:
            link = Text(f"● {st.link.replace('_', ' ')}", style=LINK_STYLE.get(st.link, "bold"))
            backlog = Text(str(st.backlog), justify="right")
            bill = bill_cell(dock.bill_view)
        refusal = st.last_refusal if st is not None else None
        last = Text("")
        if refusal is not None:
            last = Text(reason_short(refusal.reason or refusal.verdict), "red")
        alarms = list(st.alarms) if dock.connected and st is not None else []
        return (
            elide_middle(dock.name, DOCK_CELLS),
            link,
            backlog,
            bill,
            last,
            Text(f"⚠ {len(alarms)}", "bold white on red") if alarms else "",
        )

    def on_dock_changed(self, message: DockChanged) -> None:
        if not (self.app.is_running and self.is_running and self.query("#docks-table")):
            return  # starting, or shutting down while a dock's thread still reports
        table = self.query_one("#docks-table", DataTable)
        dock = self.docks[message.index]
        for column, cell in enumerate(self._cells(dock)):
            table.update_cell_at(Coordinate(message.index, column), cell)
        if table.cursor_row == message.index:
            self._draw_detail(message.index)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.app.is_running:  # not while shutting down (the detail line may be gone)
            self._draw_detail(event.cursor_row)

    def _draw_detail(self, index: int) -> None:
        """Under the table, the selected dock in full: its bill and progress, problem,
        last refusal, alarms."""
        if not 0 <= index < len(self.docks):
            return
        dock = self.docks[index]
        out = Text(dock.name, style="bold")
        if dock.connected and dock.bill_view is not None:
            out.append_text(bill_progress(dock.bill_view))
        if dock.problem:
            out.append(f"  {dock.problem}", "red")
        refusal = dock.status.last_refusal if dock.status is not None else None
        if refusal is not None:
            code = f" {refusal.code}" if refusal.code else ""
            at = f"{clock(refusal.at, self.tz)} {zone(self.tz)}"
            out.append(f"  last refused{code} at {at}: {refusal.reason}")
        alarms = dock.status.alarms if dock.connected and dock.status is not None else ()
        for alarm in alarms:
            out.append(f"  ALARM {alarm}", "bold red")
        self.query_one("#docks-detail", Static).update(out)

    def action_open_dock(self) -> None:
        """Open the selected dock's full view."""
        index = self.query_one("#docks-table", DataTable).cursor_row
        if 0 <= index < len(self.docks):
            self.open_dock(index)

    def open_dock(self, index: int) -> None:
        """Show dock ``index``'s full view: made on the first visit, the same one after."""
        name = f"dock-{index}"
        if not self.app.is_screen_installed(name):
            dock = self.docks[index].agent
            self.app.install_screen(DispatchScreen(dock, docks=True, **self.dock_options), name)
        self.app.push_screen(name)

    def dock_screen(self, index: int) -> DispatchScreen | None:
        """Dock ``index``'s full view, if it was opened."""
        name = f"dock-{index}"
        if not self.app.is_screen_installed(name):
            return None
        screen = self.app.get_screen(name)
        return screen if isinstance(screen, DispatchScreen) else None
