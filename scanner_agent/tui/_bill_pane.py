"""The bill view: the current bill's summary, progress per product, and its latest scans."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from scanner_agent.outbox import RowState
from scanner_agent.tui._format import (
    CODE_CELLS,
    clock,
    elide_end,
    elide_middle,
    number_cell,
    reason_short,
    result_text,
    scan_detail,
    state_counts,
    time_heading,
)


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
            missing = number_cell(ln["missing"], "bold red" if ln["missing"] else "green")
            extra = number_cell(ln["extra"], "bold yellow" if ln["extra"] else "")
            # A product not on the expected list is not "0 expected": it is unexpected.
            expected = number_cell(ln["expected"]) if ln["expected"] else Text("—", justify="right")
            lines.add_row(
                elide_middle(str(ln["product"]), 14),
                elide_end(str(ln["name"]), 18),
                expected,
                number_cell(ln["scanned"]),
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
        if event.data_table.id != "bill-scans" or self.view is None or not self.app.is_running:
            return  # (shutting down: the detail line may be gone already)
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
