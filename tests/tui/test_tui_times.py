"""The TUI shows times in the box's local zone, with the zone named, like the CLI.

Run against a real daemon over its control socket, with no zone given to the
app: the zone comes from ``TZ`` (Asia/Shanghai here), as on a clerk's box.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from textual.widgets import DataTable

from scanner_agent.control import ControlClient
from scanner_agent.traceserver import TraceServerThread
from scanner_agent.tui import DispatchApp, SocketAgent
from tests.support.polling import eventually

UNIT = "81234560000000011234"


async def test_scan_times_are_local_under_headings_that_name_the_zone(
    tmp_path: Path,
    make_config: Callable[..., Any],
    start_agent: Callable[..., Any],
    trace_server: TraceServerThread,
    shanghai: None,
) -> None:
    sock = tmp_path / "control.sock"
    agent = await start_agent(make_config(trace_server.url, control={"socket": str(sock)}))
    app = DispatchApp(SocketAgent(str(sock)), blink=False, poll_s=0.1, reconnect_s=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await eventually(
            lambda: app.dispatch.connected, within=10, what="connection", pause=pilot.pause
        )
        await agent.scan(UNIT)
        table = app.query_one("#stream-table", DataTable)
        await eventually(
            lambda: table.row_count == 1, within=10, what="the scan", pause=pilot.pause
        )
        assert next(str(c.label) for c in table.columns.values()) == "time CST"

        def lookup() -> Any:
            with ControlClient(str(sock)) as client:
                return client.call("lookup", code=UNIT)

        (scan,) = (await asyncio.to_thread(lookup))["scans"]
        # The scan's time of day in Shanghai (UTC+8), not the UTC the agent stores.
        stored = datetime.fromisoformat(scan["scanned_at"])
        assert stored.utcoffset() is not None
        want = stored.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%H:%M:%S")
        assert str(table.get_row_at(0)[0]) == want
        rejections = app.query_one("#rejections-table", DataTable)
        assert next(str(c.label) for c in rejections.columns.values()) == "refused CST"
