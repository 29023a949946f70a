"""The link view: the sync link, the queue and what the service refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from scanner_agent.control import AgentStatus, SyncStatus
from scanner_agent.times import parse_time
from scanner_agent.tui._format import (
    CODE_CELLS,
    LINK_STYLE,
    ago,
    clock,
    elide_middle,
    state_counts,
    with_zone,
    zone,
)


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
            f"oldest {with_zone(clock(status.oldest_pending_at, tz), tz_name)}\n",
            ("outbox    ", "dim"),
            state_counts(queue, owed=False) + "\n",
            ("sent      ", "dim"),
            f"delivered {sync.delivered}  duplicate {sync.duplicate}  "
            f"rejected {sync.rejected}  last ok {ago(sync.last_success_at, now)}\n",
            ("error     ", "dim"),
            (str(error or "-"), "red" if current else "dim"),
        ]
        if error:
            at = with_zone(clock(status.last_error_at, tz), tz_name)
            parts.append((f"  at {at}, " + ("current" if current else "past"), "dim"))
        self.query_one("#link-summary", Static).update(Text.assemble(*parts))
        table = self.query_one("#rejections-table", DataTable)
        table.clear()
        for r in reversed(sync.recent_rejections):
            table.add_row(clock(r.at, tz), elide_middle(r.code, CODE_CELLS), r.reason)


Clock = Callable[[], float]
