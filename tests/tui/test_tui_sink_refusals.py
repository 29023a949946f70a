"""A scan the sync sink refuses at the scanner shows in the TUI like any other refusal (issue 15 §2).

A real daemon syncing to 码上放心 (its gateway need not answer: the refusal is the
intake's, before the commit), the real TUI attached over the control socket.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.widgets import DataTable, Static

from scanner_agent.tui import DispatchApp, SocketAgent
from scanner_agent.tui._stream_view import StreamView

GS1 = "(01)06901234567892(17)280500(10)4711(21)ABC123"
STRAY = "81234560000000011234"
PRODUCT_BARCODE = "6901234567892"


async def test_sink_refusals_show_in_the_stream_and_the_alarm_like_any_refusal(
    make_config: Callable[..., Any], start_agent: Callable[..., Any], tmp_path: Path
) -> None:
    secret = tmp_path / "app_secret"
    secret.write_text("app-secret-1\n")
    secret.chmod(0o600)
    sock = tmp_path / "control.sock"
    cfg = make_config(
        sync={"protocol": "alihealth"},
        alihealth={
            "url": "http://127.0.0.1:9/router/rest",
            "app_key": "app1",
            "app_secret_file": str(secret),
            "ref_user_id": "ref-ent-1",
            "ent_id": "ent-self",
        },
        control={"socket": str(sock)},
    )
    agent = await start_agent(cfg)
    app = DispatchApp(SocketAgent(str(sock)), blink=False, poll_s=0.1, reconnect_s=0.05)
    async with app.run_test(size=(120, 30)) as pilot:
        for _ in range(500):
            if app.dispatch.connected:
                break
            await pilot.pause(0.02)
        replies = await agent.scan(STRAY, PRODUCT_BARCODE, GS1)
        assert [r.split("\t")[1] for r in replies] == ["invalid"] * 3, replies
        stream = app.query_one(StreamView)
        for _ in range(500):
            if stream.rows == 3:
                break
            await pilot.pause(0.02)
        table = app.query_one("#stream-table", DataTable)
        shown = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
        # The sink's refusals carry the same INVALID label as a product barcode, with the
        # reason's short label in the table and the whole reason under it when selected.
        assert [row[3] for row in shown] == ["INVALID"] * 3, shown
        assert [row[4] for row in shown] == ["no bill open", "product EAN", "not 码上放心"]
        detail = app.query_one("#stream-detail", Static)
        for row, full in enumerate(
            (
                "no bill open: open a 码上放心 bill first",
                "a product barcode, not a trace code",
                "码上放心 takes only 20-digit trace codes",
            )
        ):
            table.move_cursor(row=row)
            await pilot.pause()
            assert full in str(detail.content), detail.content
        alarm = app.query_one("#alarm")
        for _ in range(500):
            if "码上放心 takes only 20-digit trace codes" in str(alarm.render()):
                break
            await pilot.pause(0.02)
        assert alarm.has_class("-bad")
        assert "码上放心 takes only 20-digit trace codes" in str(alarm.render())
