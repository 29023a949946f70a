"""One clerk, several docks: three real daemons on this machine under one docks overview."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from scanner_agent.cli.agent import tui_sockets
from scanner_agent.config import load_config
from scanner_agent.control import ControlClient
from scanner_agent.kernel import ConfigError
from scanner_agent.traceserver import TraceServerThread
from scanner_agent.tui import DispatchScreen, DocksApp, SocketAgent
from tests.support.polling import eventually
from tests.tui.fake_agent import STATUS, FakeAgent

UNIT_A = "81234560000000011234"
PRODUCT_BARCODE = "6901234567892"


def row(app: DocksApp, i: int) -> list[str]:
    table = app.overview.query_one("#docks-table", DataTable)
    return [str(cell) for cell in table.get_row_at(i)]


async def test_three_docks_in_one_overview_and_one_opens_in_full(
    make_config: Callable[..., Any],
    start_agent: Callable[..., Any],
    trace_server: TraceServerThread,
    tmp_path: Path,
) -> None:
    socks = [tmp_path / f"dock{i}.sock" for i in range(3)]
    agents = []
    for i, sock in enumerate(socks):
        cfg = make_config(
            trace_server.url,
            device_id=f"dock-{i}",
            outbox={"path": str(tmp_path / f"outbox{i}.db")},
            control={"socket": str(sock)},
        )
        agents.append(await start_agent(cfg))

    def call(i: int, cmd: str, **args: Any) -> Any:
        with ControlClient(str(socks[i]), timeout=10) as client:
            return client.call(cmd, **args)

    await asyncio.to_thread(call, 1, "bill.open", number="SO-D1", type=201)
    csv = "product,name,count\n8123456,阿莫西林胶囊,5\n"
    await asyncio.to_thread(call, 1, "bill.import", number="SO-D1", csv=csv, kind="expected")
    await agents[1].scan(UNIT_A)

    app = DocksApp([(str(s), SocketAgent(str(s))) for s in socks], poll_s=0.1, reconnect_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await eventually(
            lambda: all(d.connected for d in app.docks),
            within=15,
            what="three docks",
            pause=pilot.pause,
        )
        await eventually(
            lambda: row(app, 1)[3].startswith("SO-D1"),
            within=15,
            what="dock 1's bill",
            pause=pilot.pause,
        )
        assert [row(app, i)[0] for i in range(3)] == ["dock-0", "dock-1", "dock-2"]
        assert all("●" in row(app, i)[1] for i in range(3)), [row(app, i) for i in range(3)]
        assert "1/5" in row(app, 1)[3]
        assert row(app, 0)[3] == "no bill open"
        # A refusal on dock 2 shows on its row, and only there.
        await agents[2].scan(PRODUCT_BARCODE)
        await eventually(
            lambda: row(app, 2)[4] == "product EAN",
            within=15,
            what="dock 2's refusal",
            pause=pilot.pause,
        )
        assert row(app, 0)[4] == ""
        # Dock 0 goes away: its row says so, the others stay as they were.
        await agents[0].stop()
        await eventually(
            lambda: "no agent" in row(app, 0)[1], within=15, what="dock 0 down", pause=pilot.pause
        )
        assert "no agent" not in row(app, 1)[1]
        # Enter on dock 1 opens its full view, over the overview, in the same app.
        table = app.query_one("#docks-table", DataTable)
        table.move_cursor(row=1)
        await pilot.press("enter")
        full = app.screen
        assert isinstance(full, DispatchScreen)
        await eventually(
            lambda: full.bill_view is not None, within=15, what="the dock's bill", pause=pilot.pause
        )
        assert full.bill_view is not None
        assert full.bill_view["bill"]["number"] == "SO-D1"
        # The overview keeps up while a dock is shown: dock 2 goes away behind it.
        await agents[2].stop()
        await eventually(
            lambda: "no agent" in row(app, 2)[1],
            within=15,
            what="dock 2 down, seen from dock 1's view",
            pause=pilot.pause,
        )
        await pilot.press("escape")
        assert app.screen is app.overview
        assert "no agent" in row(app, 2)[1]
        # Back to dock 1: the same screen, still connected, its bill already there; and what
        # happened there meanwhile is on it (its workers never stopped).
        await agents[1].scan(UNIT_A)
        await pilot.press("enter")
        assert app.screen is full
        assert full.connected
        assert full.bill_view is not None
        await eventually(
            lambda: (full.last_scan or {}).get("verdict") == "duplicate",
            within=15,
            what="the scan made while the overview was shown",
            pause=pilot.pause,
        )
        # Another dock opens its own screen; q on any of them quits.
        await pilot.press("escape")
        table.move_cursor(row=2)
        await pilot.press("enter")
        assert isinstance(app.screen, DispatchScreen)
        assert app.screen is not full


async def test_a_refusal_made_before_the_overview_starts_shows_at_once(
    make_config: Callable[..., Any],
    start_agent: Callable[..., Any],
    trace_server: TraceServerThread,
    tmp_path: Path,
) -> None:
    socks = [tmp_path / f"dock{i}.sock" for i in range(3)]
    configs = [
        make_config(
            trace_server.url,
            device_id=f"dock-{i}",
            outbox={"path": str(tmp_path / f"outbox{i}.db")},
            control={"socket": str(sock)},
        )
        for i, sock in enumerate(socks)
    ]
    agents = [await start_agent(cfg) for cfg in configs]
    # Dock 0 refused a scan and was restarted since; dock 1 refused one while running;
    # dock 2 refused nothing.  All before the clerk opens the overview.
    await agents[0].scan(PRODUCT_BARCODE)
    await agents[0].stop()
    agents[0] = await start_agent(configs[0])
    await agents[1].scan(UNIT_A, UNIT_A)

    app = DocksApp([(str(s), SocketAgent(str(s))) for s in socks], poll_s=0.1, reconnect_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        for i in range(3):
            await eventually(
                lambda i=i: "●" in row(app, i)[1], within=15, what=f"dock {i}", pause=pilot.pause
            )
            # Drawn with the dock's first status: no waiting for a refusal to come by.
            assert row(app, i)[4] == ["product EAN", "duplicate", ""][i], row(app, i)
        table = app.query_one("#docks-table", DataTable)
        table.move_cursor(row=0)
        await pilot.pause()
        detail = str(app.query_one("#docks-detail").render())
        assert "a product barcode, not a trace code" in detail, detail


def test_tui_takes_repeated_sockets_or_the_configs_docks(tmp_path: Path) -> None:
    args = argparse.Namespace(socket=["/a.sock", "/b.sock", "/c.sock"], config=None)
    assert tui_sockets(args) == ["/a.sock", "/b.sock", "/c.sock"]
    config = tmp_path / "agent.toml"
    config.write_text(
        'device_id = "office"\n[sync]\nurl = "https://trace.example"\ntoken_env = "T"\n'
        '[control]\ndocks = ["/run/dock1.sock", "/run/dock2.sock"]\n',
        encoding="utf-8",
    )
    assert tui_sockets(argparse.Namespace(socket=None, config=str(config))) == [
        "/run/dock1.sock",
        "/run/dock2.sock",
    ]
    config.write_text(config.read_text().replace('["/run/dock1.sock", ', "[1, "))
    with pytest.raises(ConfigError, match=r"control\.docks"):
        load_config(config)


async def test_every_dock_s_view_keeps_up_however_many_docks_are_open() -> None:
    # Each dock's view holds three threads for its whole life and the overview one per dock:
    # six docks opened one after another must each get their own, not wait for a free one.
    n = 6
    agents = [FakeAgent(status={**STATUS, "device_id": f"dock-{i}"}, events=[]) for i in range(n)]
    app = DocksApp([(f"/run/d{i}.sock", a) for i, a in enumerate(agents)], poll_s=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        for i in range(n):
            app.overview.open_dock(i)
            screen = app.screen
            assert isinstance(screen, DispatchScreen)
            await eventually(
                lambda s=screen: s.connected and s.status is not None,
                within=10,
                what=f"dock {i}'s view",
                pause=pilot.pause,
            )
            assert screen.status is not None
            assert screen.status.device_id == f"dock-{i}"
            await pilot.press("escape")
        # And every one of them still polls: a change on the first dock shows there.
        agents[0].status = {**STATUS, "device_id": "dock-0", "backlog": 7}
        first = app.overview.dock_screen(0)
        assert first is not None
        await eventually(
            lambda: first.status is not None and first.status.backlog == 7,
            within=10,
            what="dock 0 still polled",
            pause=pilot.pause,
        )
