"""Snapshots of every view at 80x24 and 120x40 with fixed data, times and no cursor blink.

Times are shown in a fixed zone, Asia/Shanghai (CST, +08:00), as a clerk in
China sees them: 08:30:01 UTC is drawn 16:30:01 under a ``time CST`` heading.
The data holds long GS1 codes, Chinese product names and a scan refused for
every reason the agent gives (:data:`tests.tui.fake_agent.REFUSALS`).

Update after an intended change with ``pytest tests/tui --snapshot-update`` and
look at the SVGs (``snapshot_report.html`` shows the differences).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest

pytest.importorskip("textual")
pytest.importorskip("pytest_textual_snapshot")

from textual.pilot import Pilot

from scanner_agent.control import ControlUnavailable
from scanner_agent.tui import DispatchApp, DocksApp
from tests.support.polling import eventually
from tests.tui.fake_agent import EVENTS, NOW, REFUSALS, STATUS, FakeAgent

SHANGHAI = ZoneInfo("Asia/Shanghai")
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


def make(**kw: Any) -> DispatchApp:
    return DispatchApp(FakeAgent(**kw), tz=SHANGHAI, clock=lambda: NOW, blink=False, poll_s=3600)


async def settle(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, DispatchApp)
    await eventually(
        lambda: app.dispatch.status and app.dispatch.bill_view and app.dispatch.last_scan,
        what="the views",
        pause=pilot.pause,
    )
    await pilot.pause()


def keys(*pressed: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        for key in pressed:
            await pilot.press(key)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_stream_view_with_a_duplicate_alarm(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make(), run_before=settle, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_stream_view_with_every_refusal_reason(snap_compare: Any, size: tuple[int, int]) -> None:
    """Each reason's label fits its column; the selected (last) row is spelt out below."""
    app = make(events=EVENTS + REFUSALS)
    assert snap_compare(app, run_before=settle, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_stream_view_a_long_gs1_code_selected(snap_compare: Any, size: tuple[int, int]) -> None:
    """The GS1 scan selected: its code elided in the table, whole under it."""
    app = make()
    assert snap_compare(app, run_before=keys("up"), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_bill_view_with_progress_and_a_removed_scan(
    snap_compare: Any, size: tuple[int, int]
) -> None:
    assert snap_compare(make(), run_before=keys("2"), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_devices_view(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make(), run_before=keys("3"), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_link_view(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make(), run_before=keys("4"), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_undo_dialog_names_the_scan(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make(), run_before=keys("u"), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_open_bill_dialog(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make(), run_before=keys("o"), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_no_agent(snap_compare: Any, size: tuple[int, int]) -> None:
    down = ControlUnavailable("Failed to connect to the agent at '/run/x.sock': No such file")

    class Gone(FakeAgent):
        def events(self) -> Any:
            raise down

        def call(self, cmd: str, /, **args: Any) -> Any:
            raise down

    app = DispatchApp(Gone(), tz=SHANGHAI, clock=lambda: NOW, blink=False, poll_s=3600)

    async def run_before(pilot: Pilot[Any]) -> None:
        for _ in range(200):
            if "No such file" in app.dispatch.disconnect_reason:
                break
            await pilot.pause(0.01)
        await pilot.pause()

    assert snap_compare(app, run_before=run_before, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_docks_overview(snap_compare: Any, size: tuple[int, int]) -> None:
    """Three docks: one degraded with an open bill and a refusal, one offline, one gone."""
    online = {
        **STATUS,
        "device_id": "dock-2",
        "link": "online",
        "bills": [],
        "alarms": [],
        "last_refusal": None,
    }
    offline = {
        **STATUS,
        "last_refusal": None,
        "device_id": "dock-3-cold-store",
        "link": "offline",
        "bills": [],
        "alarms": ["outbox full: 12 MB free, below outbox.min_free_mb"],
    }

    class Gone(FakeAgent):
        def events(self) -> Any:
            raise ControlUnavailable("Failed to connect to the agent at '/run/d4.sock': refused")

        def call(self, cmd: str, /, **args: Any) -> Any:
            raise ControlUnavailable("Failed to connect to the agent at '/run/d4.sock': refused")

    app = DocksApp(
        [
            ("/run/scanner-agent/control.sock", FakeAgent()),
            ("/run/user/1000/dock2.sock", FakeAgent(status=online, events=[])),
            ("/run/user/1000/dock3.sock", FakeAgent(status=offline, events=[])),
            ("/run/user/1000/dock4.sock", Gone()),
        ],
        poll_s=3600,
        reconnect_s=3600,
        tz=SHANGHAI,
    )

    async def run_before(pilot: Pilot[Any]) -> None:
        for _ in range(300):
            first, gone = app.docks[0], app.docks[3]
            ready = first.bill_view and gone.problem
            if ready and all(d.status is not None for d in app.docks[:3]):
                break
            await pilot.pause(0.01)
        await pilot.pause(0.05)

    assert snap_compare(app, run_before=run_before, terminal_size=size)
