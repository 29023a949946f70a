"""Dialogs take keystrokes at wedge speed: text, Tabs and Enter in one write.

A keyboard-wedge scanner with a Tab or Enter suffix types a whole code and its
suffix in one burst, faster than any person.  Each burst here goes through
Textual's own terminal parser and reaches the app as the driver posts it: every
key queued at once, before the app handles the first.  Every field of every
dialog must end up with its own text.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual._xterm_parser import XTermParser
from textual.pilot import Pilot
from textual.widgets import Input

from scanner_agent.tui import DispatchApp
from scanner_agent.tui._modals import OpenBillScreen, PathScreen, ReasonScreen, SearchScreen
from tests.support.polling import eventually
from tests.tui.fake_agent import FakeAgent

SHIFT_TAB = "\x1b[Z"


def burst(app: DispatchApp, text: str) -> None:
    """Post ``text`` as the terminal driver does: parsed, every key queued in one go."""
    parser = XTermParser()
    for event in [*parser.feed(text), *parser.tick()]:
        event.set_sender(app)
        app.post_message(event)


async def settled(pilot: Pilot[Any]) -> None:
    """Let every queued key be handled."""
    for _ in range(5):
        await pilot.pause(0.05)


def fields(screen: Any) -> dict[str, str]:
    return {str(inp.id): inp.value for inp in screen.query(Input)}


async def start(pilot: Pilot[Any], app: DispatchApp, key: str, screen: type) -> Any:
    await eventually(
        lambda: app.dispatch.bill_view is not None and bool(app.dispatch.status),
        within=10,
        what="the agent",
        pause=pilot.pause,
    )
    await pilot.press(key)
    await eventually(
        lambda: isinstance(app.screen, screen), within=10, what=screen.__name__, pause=pilot.pause
    )
    return app.screen


OPEN_CASES = [
    # (burst, the fields it must leave)
    ("SO-R1\t\tFROM1", {"number": "SO-R1", "from": "FROM1", "to": "", "params": ""}),
    (
        "SO-R1\t\tFROM1\tTO1\twarehouse_id=WH-1",
        {"number": "SO-R1", "from": "FROM1", "to": "TO1", "params": "warehouse_id=WH-1"},
    ),
    ("SO-R1\t", {"number": "SO-R1", "from": "", "to": "", "params": ""}),
    (
        "SO-R1\t\t\t华东仓" + SHIFT_TAB + "仁和药房",
        {"number": "SO-R1", "from": "仁和药房", "to": "华东仓", "params": ""},
    ),
    ("\t\tFROM1" + SHIFT_TAB * 2 + "SO-R2", {"number": "SO-R2", "from": "FROM1"}),
]


@pytest.mark.parametrize(("keys", "expected"), OPEN_CASES)
async def test_open_dialog_fields_take_a_burst(keys: str, expected: dict[str, str]) -> None:
    app = DispatchApp(FakeAgent(), blink=False, poll_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        dialog = await start(pilot, app, "o", OpenBillScreen)
        burst(app, keys)
        await settled(pilot)
        got = fields(dialog)
        assert {k: got[k] for k in expected} == expected


OPEN_SUBMIT_CASES = [
    ("SO-R1\t\tFROM1\tTO1\r", {"number": "SO-R1", "from": "FROM1", "to": "TO1"}),
    ("SO-R1\r", {"number": "SO-R1", "from": "", "to": ""}),
    ("SO-R1\t\tFROM1\r", {"number": "SO-R1", "from": "FROM1", "to": ""}),
]


@pytest.mark.parametrize(("keys", "expected"), OPEN_SUBMIT_CASES)
async def test_open_dialog_submits_what_a_burst_with_enter_typed(
    keys: str, expected: dict[str, str]
) -> None:
    agent = FakeAgent()
    app = DispatchApp(agent, blink=False, poll_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, app, "o", OpenBillScreen)
        burst(app, keys)
        await eventually(
            lambda: any(c == "bill.open" for c, _ in agent.calls),
            within=10,
            what="bill.open",
            pause=pilot.pause,
        )
        await settled(pilot)
    opened = [args for cmd, args in agent.calls if cmd == "bill.open"]
    assert len(opened) == 1
    assert {k: opened[0][k] for k in expected} == expected
    assert opened[0]["type"] == 201


async def test_undo_reason_takes_a_burst_with_enter() -> None:
    agent = FakeAgent()
    app = DispatchApp(agent, blink=False, poll_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, app, "u", ReasonScreen)
        burst(app, "; box 3\r")  # typing replaces the default reason (it is selected)
        await eventually(
            lambda: any(c == "bill.remove" for c, _ in agent.calls),
            within=10,
            what="bill.remove",
            pause=pilot.pause,
        )
    (args,) = [a for c, a in agent.calls if c == "bill.remove"]
    assert args["reason"] == "; box 3"


async def test_remove_reason_takes_a_burst_with_enter() -> None:
    agent = FakeAgent()
    app = DispatchApp(agent, blink=False, poll_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await eventually(
            lambda: app.dispatch.bill_view is not None,
            within=10,
            what="the bill",
            pause=pilot.pause,
        )
        await pilot.press("2")
        await pilot.press("down")  # a scan on the bill (the first row was removed)
        await pilot.press("x")
        await eventually(
            lambda: isinstance(app.screen, ReasonScreen),
            within=10,
            what="reason dialog",
            pause=pilot.pause,
        )
        burst(app, "damaged carton\r")
        await eventually(
            lambda: any(c == "bill.remove" for c, _ in agent.calls),
            within=10,
            what="remove",
            pause=pilot.pause,
        )
    (args,) = [a for c, a in agent.calls if c == "bill.remove"]
    assert args["reason"] == "damaged carton"


async def test_import_path_takes_a_burst_with_enter(tmp_path: Any) -> None:
    csv = tmp_path / "expected.csv"
    csv.write_text("product,name,count\n8123456,阿莫西林胶囊,5\n", encoding="utf-8")
    agent = FakeAgent()
    app = DispatchApp(agent, blink=False, poll_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, app, "i", PathScreen)
        burst(app, f"{csv}\r")
        await eventually(
            lambda: any(c == "bill.import" for c, _ in agent.calls),
            within=10,
            what="import",
            pause=pilot.pause,
        )
    (args,) = [a for c, a in agent.calls if c == "bill.import"]
    assert args["csv"].startswith("product,name,count")


async def test_search_takes_scan_after_scan_at_wedge_speed() -> None:
    agent = FakeAgent()
    app = DispatchApp(agent, blink=False, poll_s=3600)
    codes = ["81234560000000011234", "(01)06901234567892(21)A1B2C3", "81234500000000011111"]
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, app, "slash", SearchScreen)
        burst(app, "".join(f"{code}\r" for code in codes))  # three scans, Enter suffix
        await eventually(
            lambda: sum(c == "lookup" for c, _ in agent.calls) == 3,
            within=10,
            what="three lookups",
            pause=pilot.pause,
        )
    assert [a["code"] for c, a in agent.calls if c == "lookup"] == codes
