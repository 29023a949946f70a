"""The devices view: each scanner, whether it is connected, and its last scan."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from scanner_agent.control import AgentStatus
from scanner_agent.tui._format import ago, elide_end, elide_middle


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
