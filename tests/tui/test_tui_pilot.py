"""The TUI driven by Pilot against a real daemon on a temporary control socket."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Input

from scanner_agent.control import ControlUncertain
from scanner_agent.traceserver import TraceServerThread
from scanner_agent.tui import DispatchApp, SocketAgent
from scanner_agent.tui._bill_pane import BillPane
from scanner_agent.tui._messages import CommandFailed, ScansArrived
from scanner_agent.tui._modals import ConfirmScreen, OpenBillScreen, ReasonScreen, SearchScreen
from scanner_agent.tui._stream_view import StreamView
from tests.support.polling import eventually
from tests.tui.fake_agent import FakeAgent

UNIT_A = "81234560000000011234"
UNIT_B = "81234560000000022345"
UNIT_C = "81234560000000033456"


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "control.sock"


@pytest.fixture
def config(make_config: Callable[..., Any], trace_server: TraceServerThread, sock: Path) -> Any:
    return make_config(trace_server.url, control={"socket": str(sock)})


@pytest.fixture
async def agent(start_agent: Callable[..., Any], config: Any) -> Any:
    return await start_agent(config)


def make_app(sock: Path, **kw: Any) -> DispatchApp:
    return DispatchApp(SocketAgent(str(sock)), blink=False, poll_s=0.1, reconnect_s=0.05, **kw)


async def open_bill(pilot: Pilot[Any], app: DispatchApp, number: str) -> None:
    await eventually(
        lambda: app.dispatch.connected, within=10, what="connection", pause=pilot.pause
    )
    await pilot.press("o")
    await eventually(
        lambda: isinstance(app.screen, OpenBillScreen),
        within=10,
        what="open dialog",
        pause=pilot.pause,
    )
    app.screen.query_one("#number", Input).value = number
    await pilot.press("enter")
    await eventually(
        lambda: (
            app.dispatch.bill_view is not None
            and app.dispatch.bill_view["bill"]["number"] == number
        ),
        within=10,
        what="bill view",
        pause=pilot.pause,
    )


async def test_stream_shows_scans_and_a_bad_scan_raises_the_alarm_and_bell(
    agent: Any, sock: Path
) -> None:
    app = make_app(sock, bell=True)
    bells: list[int] = []
    async with app.run_test(size=(80, 24)) as pilot:
        app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
        await eventually(
            lambda: app.dispatch.connected, within=10, what="connection", pause=pilot.pause
        )
        await agent.scan(UNIT_A, UNIT_A, "6901234567892")
        stream = app.query_one(StreamView)
        await eventually(lambda: stream.rows == 3, within=10, what="three rows", pause=pilot.pause)
        alarm = app.query_one("#alarm")
        assert alarm.has_class("-bad")
        assert "a product barcode" in str(alarm.render())
        assert bells
        await agent.scan(UNIT_B)
        await eventually(
            lambda: alarm.has_class("-ok"),
            within=10,
            what="alarm cleared by a good scan",
            pause=pilot.pause,
        )


async def test_open_bill_from_the_keyboard_routes_scans_to_it(agent: Any, sock: Path) -> None:
    app = make_app(sock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_bill(pilot, app, "SO-1")
        assert agent.daemon.desk.bill_for("ship") == "SO-1"
        assert app.query_one("#views").current == "bill"
        await agent.scan(UNIT_A)
        await eventually(
            lambda: (
                app.dispatch.bill_view is not None
                and app.dispatch.bill_view["bill"]["totals"]["scans"] == 1
            ),
            within=10,
            what="the scan on the bill",
            pause=pilot.pause,
        )
        assert app.query_one("#bill-scans").row_count == 1


async def test_open_bill_dialog_passes_platform_params(agent: Any, sock: Path) -> None:
    app = make_app(sock)
    async with app.run_test(size=(80, 24)) as pilot:
        await eventually(
            lambda: app.dispatch.connected, within=10, what="connection", pause=pilot.pause
        )
        await pilot.press("o")
        await eventually(
            lambda: isinstance(app.screen, OpenBillScreen),
            within=10,
            what="open dialog",
            pause=pilot.pause,
        )
        dialog = app.screen
        dialog.query_one("#number", Input).value = "SO-P"
        dialog.query_one("#params", Input).value = "warehouse_id"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog  # not NAME=VALUE: said in the dialog, nothing opened
        assert "expected NAME=VALUE" in str(dialog.query_one("#open-error").render())
        dialog.query_one("#params", Input).value = 'warehouse_id=WH-1 from_address="浦东 1号"'
        dialog.query_one("#number", Input).focus()
        await pilot.press("enter")
        await eventually(
            lambda: (
                app.dispatch.bill_view is not None
                and app.dispatch.bill_view["bill"]["number"] == "SO-P"
            ),
            within=10,
            what="bill view",
            pause=pilot.pause,
        )
        book = agent.daemon.desk.book
        assert await agent.daemon.thread.call(book.platform_params, "SO-P") == {
            "warehouse_id": "WH-1",
            "from_address": "浦东 1号",
        }


async def test_undo_asks_a_reason_and_takes_the_last_scan_off(agent: Any, sock: Path) -> None:
    app = make_app(sock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_bill(pilot, app, "SO-2")
        await agent.scan(UNIT_A, UNIT_B)
        await eventually(
            lambda: (
                app.dispatch.bill_view is not None
                and app.dispatch.bill_view["bill"]["totals"]["scans"] == 2
            ),
            within=10,
            what="two scans",
            pause=pilot.pause,
        )
        await pilot.press("u")
        await eventually(
            lambda: isinstance(app.screen, ReasonScreen),
            within=10,
            what="reason dialog",
            pause=pilot.pause,
        )
        await pilot.press("enter")  # the default reason
        await eventually(
            lambda: (
                app.dispatch.bill_view is not None
                and app.dispatch.bill_view["bill"]["totals"]["removed"] == 1
            ),
            within=10,
            what="the removal",
            pause=pilot.pause,
        )
        removals = app.dispatch.bill_view["removals"]
        assert [(r["code"], r["reason"], r["origin"]) for r in removals] == [
            (UNIT_B, "scanned by mistake", "tui")
        ]


async def test_remove_takes_the_selected_scan_off_with_its_reason(agent: Any, sock: Path) -> None:
    app = make_app(sock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_bill(pilot, app, "SO-3")
        await agent.scan(UNIT_A, UNIT_B, UNIT_C)
        await eventually(
            lambda: (
                app.dispatch.bill_view is not None
                and app.dispatch.bill_view["bill"]["totals"]["scans"] == 3
            ),
            within=10,
            what="three scans",
            pause=pilot.pause,
        )
        await pilot.press("down")  # newest first: UNIT_C, then UNIT_B
        assert app.query_one(BillPane).selected_scan()["code"] == UNIT_B
        await pilot.press("x")
        await eventually(
            lambda: isinstance(app.screen, ReasonScreen),
            within=10,
            what="reason dialog",
            pause=pilot.pause,
        )
        app.screen.query_one("#reason", Input).value = "damaged"
        await pilot.press("enter")
        await eventually(
            lambda: (
                app.dispatch.bill_view is not None
                and app.dispatch.bill_view["bill"]["totals"]["removed"] == 1
            ),
            within=10,
            what="the removal",
            pause=pilot.pause,
        )
        assert app.dispatch.bill_view["removals"][0]["code"] == UNIT_B
        assert app.dispatch.bill_view["removals"][0]["reason"] == "damaged"


async def test_close_confirms_and_the_bill_shows_its_delivery(agent: Any, sock: Path) -> None:
    app = make_app(sock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_bill(pilot, app, "SO-4")
        await agent.scan(UNIT_A)
        await eventually(
            lambda: (
                app.dispatch.bill_view is not None
                and app.dispatch.bill_view["bill"]["totals"]["scans"] == 1
            ),
            within=10,
            what="the scan",
            pause=pilot.pause,
        )
        assert app.dispatch.bill_view["bill"]["totals"]["held"] == 1  # held while open
        assert app.dispatch.bill_view["bill"]["totals"]["pending"] == 0
        await pilot.press("c")
        await eventually(
            lambda: isinstance(app.screen, ConfirmScreen),
            within=10,
            what="confirm dialog",
            pause=pilot.pause,
        )
        await pilot.press("y")
        await eventually(
            lambda: (
                app.dispatch.bill_view is not None
                and app.dispatch.bill_view["bill"]["state"] == "delivered"
            ),
            within=10,
            what="delivery",
            pause=pilot.pause,
        )
        assert app.dispatch.bill_view["scans"][0]["result"] == "accepted"
        assert agent.daemon.desk.bill_for("ship") is None


async def test_import_expected_list_shows_progress_with_chinese_names(
    agent: Any, sock: Path, tmp_path: Path
) -> None:
    csv = tmp_path / "expected.csv"
    csv.write_text("药品标识码,名称,数量\n8123456,阿莫西林胶囊,5\n", encoding="utf-8")
    app = make_app(sock)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_bill(pilot, app, "SO-5")
        await pilot.press("i")
        await eventually(
            lambda: app.screen.query("#path"), within=10, what="path dialog", pause=pilot.pause
        )
        app.screen.query_one("#path", Input).value = str(csv)
        await pilot.press("enter")
        await agent.scan(UNIT_A)
        await eventually(
            lambda: (
                app.dispatch.bill_view is not None
                and app.dispatch.bill_view["lines"]
                and app.dispatch.bill_view["lines"][0]["scanned"] == 1
            ),
            within=10,
            what="progress",
            pause=pilot.pause,
        )
        line = app.dispatch.bill_view["lines"][0]
        assert (line["name"], line["expected"], line["missing"]) == ("阿莫西林胶囊", 5, 4)
        cells = app.query_one("#bill-lines").get_row_at(0)
        assert cells[1] == "阿莫西林胶囊"


async def test_search_shows_a_codes_history(agent: Any, sock: Path) -> None:
    app = make_app(sock)
    async with app.run_test(size=(80, 24)) as pilot:
        await eventually(
            lambda: app.dispatch.connected, within=10, what="connection", pause=pilot.pause
        )
        await agent.scan(UNIT_A, UNIT_A)
        await pilot.press("slash")
        await eventually(
            lambda: isinstance(app.screen, SearchScreen),
            within=10,
            what="search dialog",
            pause=pilot.pause,
        )
        app.screen.query_one("#code", Input).value = UNIT_A
        await pilot.press("enter")
        table = app.screen.query_one("#search-table")
        await eventually(
            lambda: table.row_count == 2, within=10, what="history rows", pause=pilot.pause
        )
        whats = sorted(str(table.get_row_at(i)[1]) for i in range(2))
        assert whats == ["refused", "ship"]
        await pilot.press("escape")
        await eventually(
            lambda: not isinstance(app.screen, SearchScreen),
            within=10,
            what="closed",
            pause=pilot.pause,
        )


async def test_view_keys_and_palette_commands(agent: Any, sock: Path) -> None:
    app = make_app(sock)
    async with app.run_test(size=(80, 24)) as pilot:
        await eventually(
            lambda: app.dispatch.connected and bool(app.dispatch.status),
            within=10,
            what="status",
            pause=pilot.pause,
        )
        switcher = app.query_one("#views")
        for key, name in (("3", "devices"), ("4", "link"), ("2", "bill"), ("1", "stream")):
            await pilot.press(key)
            assert switcher.current == name
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Open a bill", "Close the bill", "Undo the last scan", "Search a code"} <= titles
        devices = app.query_one("#devices-table")
        assert devices.get_row_at(0)[0] == "tcp:test"
        await pilot.press("b")
        assert app.dispatch.bell_on


async def test_reconnects_by_itself_when_the_agent_restarts(
    agent: Any, sock: Path, start_agent: Callable[..., Any], config: Any
) -> None:
    app = make_app(sock)
    async with app.run_test(size=(80, 24)) as pilot:
        await eventually(
            lambda: app.dispatch.connected, within=10, what="connection", pause=pilot.pause
        )
        await agent.stop()
        await eventually(
            lambda: not app.dispatch.connected, within=10, what="disconnect", pause=pilot.pause
        )
        assert app.query_one("#alarm").has_class("-down")
        again = await start_agent(config)
        await eventually(
            lambda: app.dispatch.connected, within=10, what="reconnection", pause=pilot.pause
        )
        await again.scan(UNIT_A)
        await eventually(
            lambda: app.query_one(StreamView).rows == 1,
            within=10,
            what="a scan after restart",
            pause=pilot.pause,
        )


async def test_a_flood_of_scans_is_coalesced_and_the_stream_stays_bounded(
    agent: Any, sock: Path
) -> None:
    handled: list[Message] = []
    app = make_app(sock, stream_rows=50)
    async with app.run_test(size=(80, 24), message_hook=handled.append) as pilot:
        await eventually(
            lambda: app.dispatch.connected, within=10, what="connection", pause=pilot.pause
        )
        codes = [f"8123456{i:013d}" for i in range(600)]
        await agent.scan(*codes)
        stream = app.query_one(StreamView)
        await eventually(
            lambda: (
                app.dispatch.last_scan is not None and app.dispatch.last_scan["code"] == codes[-1]
            ),
            within=10,
            what="the last scan drawn",
            pause=pilot.pause,
        )
        assert stream.rows == 50
        signals = sum(isinstance(m, ScansArrived) for m in handled)
        assert signals < 600 / 4  # far fewer redraws than scans


async def test_open_undo_close_and_lookup_work_right_after_each_agent_restart(
    agent: Any, sock: Path, start_agent: Callable[..., Any], config: Any
) -> None:
    handled: list[Message] = []
    app = make_app(sock)
    running = [agent]

    async def restart(pilot: Pilot[Any]) -> Any:
        await running[-1].stop()
        await eventually(
            lambda: not app.dispatch.connected, within=10, what="disconnect", pause=pilot.pause
        )
        running.append(await start_agent(config))
        await eventually(
            lambda: app.dispatch.connected, within=10, what="reconnection", pause=pilot.pause
        )
        return running[-1]

    async def lookup(pilot: Pilot[Any], code: str, rows: int) -> None:
        await pilot.press("slash")
        await eventually(
            lambda: isinstance(app.screen, SearchScreen),
            within=10,
            what="search dialog",
            pause=pilot.pause,
        )
        app.screen.query_one("#code", Input).value = code
        await pilot.press("enter")
        table = app.screen.query_one("#search-table")
        await eventually(
            lambda: table.row_count == rows,
            within=10,
            what=f"{rows} history rows",
            pause=pilot.pause,
        )
        await pilot.press("escape")
        await eventually(
            lambda: not isinstance(app.screen, SearchScreen),
            within=10,
            what="closed",
            pause=pilot.pause,
        )

    async with app.run_test(size=(80, 24), message_hook=handled.append) as pilot:
        await eventually(
            lambda: app.dispatch.connected, within=10, what="connection", pause=pilot.pause
        )
        await lookup(pilot, UNIT_A, 0)  # every worker thread now holds a connection
        await restart(pilot)
        await open_bill(pilot, app, "SO-R")
        await running[-1].scan(UNIT_A, UNIT_B)
        await eventually(
            lambda: (
                app.dispatch.bill_view is not None
                and app.dispatch.bill_view["bill"]["totals"]["scans"] == 2
            ),
            within=10,
            what="two scans",
            pause=pilot.pause,
        )
        await restart(pilot)
        await pilot.press("u")
        await eventually(
            lambda: isinstance(app.screen, ReasonScreen),
            within=10,
            what="reason dialog",
            pause=pilot.pause,
        )
        await pilot.press("enter")
        await eventually(
            lambda: (
                app.dispatch.bill_view is not None
                and app.dispatch.bill_view["bill"]["totals"]["removed"] == 1
            ),
            within=10,
            what="the undo",
            pause=pilot.pause,
        )
        await restart(pilot)
        await pilot.press("c")
        await eventually(
            lambda: isinstance(app.screen, ConfirmScreen),
            within=10,
            what="confirm dialog",
            pause=pilot.pause,
        )
        await pilot.press("y")
        await eventually(
            lambda: (
                app.dispatch.bill_view is not None
                and app.dispatch.bill_view["bill"]["state"] != "open"
            ),
            within=10,
            what="the close",
            pause=pilot.pause,
        )
        await restart(pilot)
        await lookup(pilot, UNIT_B, 2)  # scanned onto SO-R, then undone
    failed = [m for m in handled if isinstance(m, CommandFailed)]
    assert failed == []


async def test_an_undo_whose_reply_was_lost_tells_the_clerk_to_check(tmp_path: Path) -> None:
    lost = ControlUncertain(
        "bill.remove", "it hung up after bill.remove was sent: it may have been done"
    )
    agent = FakeAgent(errors={"bill.remove": lost})
    app = DispatchApp(agent, blink=False, poll_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await eventually(
            lambda: app.dispatch.bill_view is not None,
            within=10,
            what="the bill",
            pause=pilot.pause,
        )
        await pilot.press("u")
        await eventually(
            lambda: isinstance(app.screen, ReasonScreen),
            within=10,
            what="reason dialog",
            pause=pilot.pause,
        )
        await pilot.press("enter")
        await eventually(
            lambda: bool(app._notifications), within=10, what="a notification", pause=pilot.pause
        )
        note = list(app._notifications)[-1]
        assert note.title == "undo: not confirmed"
        assert "may have been done" in note.message
        assert "Check the bill" in note.message
        assert [c for c, _ in agent.calls].count("bill.remove") == 1
