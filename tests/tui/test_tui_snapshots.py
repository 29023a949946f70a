"""Snapshots of the main views at 80x24 with fixed data, times and no cursor blink.

Times are shown in a fixed zone, Asia/Shanghai (CST, +08:00), as a clerk in
China sees them: 08:30:01 UTC is drawn 16:30:01 under a ``time CST`` heading.

Update after an intended change with ``pytest tests/tui --snapshot-update`` and
look at the SVGs (``snapshot_report.html`` shows the differences).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

pytest.importorskip("textual")
pytest.importorskip("pytest_textual_snapshot")

from textual.pilot import Pilot

from scanner_agent.tui import DispatchApp
from tests.tui.fake_agent import NOW, FakeAgent

SHANGHAI = ZoneInfo("Asia/Shanghai")


def make() -> DispatchApp:
    return DispatchApp(FakeAgent(), tz=SHANGHAI, clock=lambda: NOW, blink=False, poll_s=3600)


async def settle(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, DispatchApp)
    for _ in range(200):
        if app.status and app.bill_view and app.last_scan:
            break
        await pilot.pause(0.01)
    await pilot.pause()


def view(name: str) -> Any:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press(name)
        await pilot.pause()

    return run_before


def test_stream_view_with_a_duplicate_alarm(snap_compare: Any) -> None:
    assert snap_compare(make(), run_before=settle, terminal_size=(80, 24))


def test_bill_view_with_progress_and_a_removed_scan(snap_compare: Any) -> None:
    assert snap_compare(make(), run_before=view("2"), terminal_size=(80, 24))


def test_devices_view(snap_compare: Any) -> None:
    assert snap_compare(make(), run_before=view("3"), terminal_size=(80, 24))


def test_link_view(snap_compare: Any) -> None:
    assert snap_compare(make(), run_before=view("4"), terminal_size=(80, 24))
