"""The stream view: every scan as it happens, newest at the bottom, bounded."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import tzinfo
from typing import Any

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from scanner_agent.tui._format import (
    CODE_CELLS,
    clock,
    elide_end,
    elide_middle,
    reason_short,
    scan_detail,
    time_heading,
    verdict_text,
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
        if not self.app.is_running:  # shutting down: the detail line may be gone already
            return
        ev = self._events.get(event.row_key)
        self.query_one("#stream-detail", Static).update(scan_detail(ev) if ev else "")

    @property
    def rows(self) -> int:
        """Rows shown now."""
        return len(self._keys)
