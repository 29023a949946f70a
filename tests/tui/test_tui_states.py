"""What the screen says about the agent, the link and the bill is never out of date or misleading.

The dot in the status line has the link's colour (and a hollow one with no
agent at all), a bill that is no longer open leaves the status line, bill
progress counts only what the expected list asks for, and the undo dialog
names the scan it takes off.
"""

from __future__ import annotations

import copy
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from rich.text import Text
from textual.widgets import Static

from scanner_agent.control import ControlUnavailable
from scanner_agent.tui import DispatchApp
from scanner_agent.tui._modals import ReasonScreen
from tests.support.polling import eventually
from tests.tui.fake_agent import BILL_VIEW, NOW, STATUS, FakeAgent

SHANGHAI = ZoneInfo("Asia/Shanghai")


def status_line(app: DispatchApp) -> Text:
    content = app.query_one("#status-line", Static).content
    assert isinstance(content, Text)
    return content


def dot(app: DispatchApp) -> tuple[str, str]:
    """The status dot and its colour."""
    line = status_line(app)
    for span in line.spans:
        text = line.plain[span.start : span.end].strip()
        if text in ("●", "○", "✖"):
            return text, str(span.style)
    raise AssertionError(f"no dot in {line.plain!r}")


def app_for(**kw: Any) -> DispatchApp:
    return DispatchApp(FakeAgent(**kw), tz=SHANGHAI, clock=lambda: NOW, blink=False, poll_s=3600)


@pytest.mark.parametrize(
    ("link", "shown", "colour"),
    [
        ("online", "link online", "green"),
        ("degraded", "link degraded", "yellow"),
        ("offline", "link OFFLINE", "red"),
        ("auth_failed", "link AUTH FAILED", "red"),
    ],
)
async def test_the_status_dot_has_the_links_colour(link: str, shown: str, colour: str) -> None:
    app = app_for(status={**STATUS, "link": link})
    async with app.run_test(size=(80, 24)) as pilot:
        await eventually(
            lambda: bool(app.dispatch.status), within=10, what="status", pause=pilot.pause
        )
        await pilot.pause()
        symbol, style = dot(app)
        assert symbol == "●"
        assert colour in style
        assert shown in status_line(app).plain
        others = {"green", "yellow", "red"} - {colour}
        assert not any(o in style for o in others)


class NoAgent(FakeAgent):
    def events(self) -> Any:
        raise ControlUnavailable("Failed to connect to the agent: No such file or directory")

    def call(self, cmd: str, /, **args: Any) -> Any:
        raise ControlUnavailable("Failed to connect to the agent: No such file or directory")


async def test_with_no_agent_the_dot_is_hollow_and_never_green() -> None:
    app = DispatchApp(NoAgent(), blink=False, poll_s=3600, reconnect_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await eventually(
            lambda: "No such file" in app.dispatch.disconnect_reason,
            within=10,
            what="the outage",
            pause=pilot.pause,
        )
        symbol, style = dot(app)
        assert symbol == "○"
        assert "green" not in style
        assert "no agent" in status_line(app).plain


async def test_the_dot_goes_hollow_when_the_agent_goes_away_after_being_online() -> None:
    agent = FakeAgent(status={**STATUS, "link": "online"})
    app = DispatchApp(agent, blink=False, poll_s=3600, reconnect_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await eventually(
            lambda: bool(app.dispatch.status), within=10, what="status", pause=pilot.pause
        )
        await pilot.pause()
        assert dot(app) == ("●", "green") or "green" in dot(app)[1]
        agent.streams[0].fail(ControlUnavailable("Failed to read from the agent: it hung up"))
        await eventually(
            lambda: not app.dispatch.connected, within=10, what="the outage", pause=pilot.pause
        )
        symbol, style = dot(app)
        assert symbol == "○"
        assert "green" not in style
        assert "link online" not in status_line(app).plain


@pytest.mark.parametrize("state", ["closed", "delivered", "partly_rejected", "empty"])
async def test_a_bill_that_is_not_open_leaves_the_status_line(state: str) -> None:
    view = copy.deepcopy(BILL_VIEW)
    view["bill"]["state"] = state
    status = {**STATUS, "bills": []}
    app = app_for(bill=view, status=status)
    app.dispatch.bill_number = (
        "SO-2026-0001"  # the last bill seen: its view still shows on the bill tab
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await eventually(
            lambda: app.dispatch.bill_view is not None,
            within=10,
            what="the bill",
            pause=pilot.pause,
        )
        await pilot.pause()
        assert "SO-2026-0001" not in status_line(app).plain
        assert "no bill open" in status_line(app).plain


async def test_progress_counts_only_expected_units_and_shows_unexpected_apart() -> None:
    # 8123456: 20 expected, 11 scanned; 06901234567892: not expected, 1 scanned.
    app = app_for()
    async with app.run_test(size=(80, 24)) as pilot:
        await eventually(
            lambda: app.dispatch.bill_view is not None,
            within=10,
            what="the bill",
            pause=pilot.pause,
        )
        await pilot.pause()
        line = status_line(app).plain
        assert "11/20" in line
        assert "+1 unexpected" in line
        assert "12/20" not in line


async def test_over_scanning_an_expected_product_is_not_progress() -> None:
    view = copy.deepcopy(BILL_VIEW)
    view["lines"][0].update(expected=10, scanned=11, missing=0, extra=1)
    app = app_for(bill=view)
    async with app.run_test(size=(80, 24)) as pilot:
        await eventually(
            lambda: app.dispatch.bill_view is not None,
            within=10,
            what="the bill",
            pause=pilot.pause,
        )
        await pilot.pause()
        line = status_line(app).plain
        assert "10/10" in line
        assert "+2 unexpected" in line


async def test_the_undo_dialog_names_the_scan_it_takes_off() -> None:
    agent = FakeAgent()
    app = DispatchApp(agent, tz=SHANGHAI, clock=lambda: NOW, blink=False, poll_s=3600)
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
            what="the undo dialog",
            pause=pilot.pause,
        )
        said = " ".join(
            str(s.content) for s in app.screen.query(Static) if not s.has_class("dialog-error")
        )
        # The last scan still on the bill is seq 3 (seq 4 was removed): time, code, product.
        assert "16:30:03" in said
        assert "(01)06901234567892(21)A1B2C3" in said
        assert "布洛芬缓释胶囊" in said
        await pilot.press("enter")
        await eventually(
            lambda: any(c == "bill.remove" for c, _ in agent.calls),
            within=10,
            what="removal",
            pause=pilot.pause,
        )
    (args,) = [a for c, a in agent.calls if c == "bill.remove"]
    assert args["seq"] == 3  # exactly the scan it named, even if another arrives meanwhile
