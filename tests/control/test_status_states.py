"""What ``status`` and the bill commands say about states: the last error and its time, removals as JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.cli import main as cli_main
from scanner_agent.config import load_config
from scanner_agent.control import ControlClient
from scanner_agent.times import local
from scanner_agent.traceserver import TraceServerThread
from tests.support.polling import eventually

UNIT_A = "81234560000000011234"
UNIT_B = "81234560000000022345"
UNIT_C = "81234560000000033456"


async def call(sock: Path, cmd: str, **args: Any) -> Any:
    def go() -> Any:
        with ControlClient(str(sock), timeout=10) as client:
            return client.call(cmd, **args)

    return await asyncio.to_thread(go)


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "control.sock"


def write_config(tmp_path: Path, token_file: Path, sock: Path, url: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'device_id = "test-dock"\n[outbox]\npath = "{tmp_path / "outbox.db"}"\nmin_free_mb = 0\n'
        f'[sync]\nurl = "{url}"\ntoken_file = "{token_file}"\nidle_poll_s = 0.05\n'
        "backoff_initial_s = 0.02\nbackoff_max_s = 0.2\n"
        f'[control]\nsocket = "{sock}"\n'
    )
    return path


async def test_status_shows_the_last_error_with_its_time_and_marks_it_past_after_a_delivery(
    tmp_path: Path,
    token_file: Path,
    sock: Path,
    start_agent: Callable[..., Any],
    trace_server: TraceServerThread,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_config(tmp_path, token_file, sock, "http://127.0.0.1:9")  # nothing listens
    agent = await start_agent(load_config(path))
    agent.daemon.config_path = path
    assert (await agent.scan(UNIT_A))[0].startswith("ACK")

    async def failing() -> Any:
        st = await call(sock, "status")
        return st if st["last_error"] and st["link"] == "offline" else None

    down = await failing() or await eventually(failing, what="a failed send")
    assert down["last_error_current"] is True
    failed_at = datetime.fromisoformat(down["last_error_at"])
    assert failed_at.tzinfo is not None
    assert down["sync"]["last_error_at"] == down["last_error_at"]

    async def cli(*argv: str) -> str:
        code = await asyncio.to_thread(cli_main, [*argv, "--socket", str(sock)])
        assert code == 0
        return capsys.readouterr().out

    line = next(x for x in (await cli("status")).splitlines() if x.startswith("last error"))
    assert "current" in line, line
    assert down["last_error"] in line, line

    # The link comes back: the error stays on record, with its time, but is no longer current.
    write_config(tmp_path, token_file, sock, trace_server.url)
    assert (await agent.daemon.reload()).error is None
    await agent.drained()

    async def recovered() -> Any:
        st = await call(sock, "status")
        return st if st["link"] == "online" else None

    up = await eventually(recovered, what="a delivery")
    assert up["last_error_current"] is False
    assert up["last_error"]
    last_error_at = datetime.fromisoformat(up["last_error_at"])
    assert last_error_at <= datetime.fromisoformat(up["sync"]["last_success_at"])
    line = next(x for x in (await cli("status")).splitlines() if x.startswith("last error"))
    assert "current" not in line, line
    assert "past" in line, line
    assert local(up["last_error_at"]) in line, line  # people see local time, with the zone

    # Another failure makes an error current again, with a later time.
    await asyncio.to_thread(trace_server.stop)
    assert (await agent.scan(UNIT_B))[0].startswith("ACK")

    async def failing_again() -> Any:
        st = await call(sock, "status")
        return st if st["last_error_current"] else None

    again = await eventually(failing_again, what="a second failure")
    assert datetime.fromisoformat(again["last_error_at"]) >= last_error_at


async def test_bill_undo_and_remove_print_json_like_the_other_bill_commands(
    tmp_path: Path,
    make_config: Callable[..., Any],
    start_agent: Callable[..., Any],
    sock: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    agent = await start_agent(make_config(sync={"enabled": False}, control={"socket": str(sock)}))
    s = ["--socket", str(sock)]

    async def cli(*argv: str) -> dict[str, Any]:
        code = await asyncio.to_thread(cli_main, [*argv, "--json", *s])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        parsed: dict[str, Any] = json.loads(captured.out)
        return parsed

    await cli("bill", "open", "SO-J", "-t", "201")
    expected = tmp_path / "expected.csv"
    expected.write_text("product,count\n8123456,3\n", encoding="utf-8")
    imported = await cli("bill", "import", str(expected))
    assert imported == {"kind": "expected", "bill": "SO-J", "products": 1}
    await agent.scan(UNIT_A, UNIT_B, UNIT_C)
    undone = await cli("bill", "undo", "--reason", "scanned twice")
    assert (undone["code"], undone["bill"], undone["reason"], undone["origin"]) == (
        UNIT_C,
        "SO-J",
        "scanned twice",
        "cli",
    )
    removed = await cli("bill", "remove", "--code", UNIT_A, "--reason", "damaged")
    assert (removed["code"], removed["reason"]) == (UNIT_A, "damaged")
    by_seq = await cli("bill", "remove", "SO-J", "--seq", "2", "--reason", "wrong product")
    assert by_seq["seq"] == 2
    assert by_seq["code"] == UNIT_B
    for r in (undone, removed, by_seq):
        assert set(r) >= {"seq", "event_id", "bill", "code", "reason", "origin", "removed_at"}
        datetime.fromisoformat(r["removed_at"])
    closed = await cli("bill", "close", "SO-J")
    assert closed["state"] == "empty"
    assert closed["totals"]["scans"] == 0
    assert closed["totals"]["removed"] == 3
