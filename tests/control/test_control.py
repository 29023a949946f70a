"""The control socket of a real daemon: protocol, bills end to end, events, CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.cli import main as cli_main
from scanner_agent.config import config_from_dict
from scanner_agent.control import (
    PROTOCOL_VERSION,
    ControlClient,
    ControlUnavailable,
    EventStream,
    RemoteError,
)
from scanner_agent.kernel import ConfigError
from scanner_agent.traceserver import TraceServerThread
from tests.support.agent import acks

UNIT_A = "81234560000000011234"
UNIT_B = "81234560000000022345"


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "control.sock"


@pytest.fixture
async def agent(
    make_config: Callable[..., Any],
    start_agent: Callable[..., Any],
    trace_server: TraceServerThread,
    sock: Path,
) -> Any:
    return await start_agent(make_config(trace_server.url, control={"socket": str(sock)}))


async def call(sock: Path, cmd: str, **args: Any) -> Any:
    def go() -> Any:
        with ControlClient(str(sock), timeout=10) as client:
            return client.call(cmd, **args)

    return await asyncio.to_thread(go)


async def raw(sock: Path, *lines: bytes) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(str(sock))
    writer.write(b"".join(lines))
    await writer.drain()
    out = [json.loads(await reader.readline()) for _ in lines]
    writer.close()
    await writer.wait_closed()
    return out


async def test_socket_is_created_with_its_mode_and_removed_at_stop(agent: Any, sock: Path) -> None:
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
    hello = await call(sock, "hello")
    assert hello["protocol"] == PROTOCOL_VERSION
    assert "bill.open" in hello["commands"]
    await agent.stop()
    assert sock.name not in os.listdir(sock.parent)


async def test_protocol_errors_are_answered_not_fatal(agent: Any, sock: Path) -> None:
    replies = await raw(
        sock,
        b"not json\n",
        b'{"id": 1, "cmd": "nope"}\n',
        b'{"id": 2, "v": 99, "cmd": "status"}\n',
        b'{"id": 3, "cmd": "bill.open", "args": {"number": "X"}}\n',
        b'{"id": 4, "cmd": "status"}\n',
    )
    assert [r.get("error", {}).get("code") for r in replies] == [
        "bad_request",
        "unknown_command",
        "unsupported_version",
        "bad_request",
        None,
    ]
    assert replies[4]["ok"] is True
    assert replies[4]["result"]["control"]["serving"] is True


async def test_bill_lifecycle_over_the_socket_holds_then_delivers(agent: Any, sock: Path) -> None:
    bill = await call(
        sock, "bill.open", number="SO-100", type=201, **{"from": "仓库", "to": "药房"}
    )
    assert bill["state"] == "open"
    assert "warning" not in bill
    assert await agent.scan(UNIT_A, UNIT_B) == acks(UNIT_A, UNIT_B)
    undone = await call(sock, "bill.undo", reason="scanned twice by mistake")
    assert undone["code"] == UNIT_B
    assert await agent.scan(UNIT_B) == acks(UNIT_B)  # scannable again
    await asyncio.sleep(0.2)  # the sync loop polls every 0.05 s: nothing may leave
    status = await call(sock, "status")
    assert status["queue"]["delivered"] == 0
    assert [b["number"] for b in status["bills"]] == ["SO-100"]
    closed = await call(sock, "bill.close", number="SO-100")
    assert closed["totals"]["scans"] == 2
    await agent.drained()
    view = await call(sock, "bill.show", number="SO-100")
    assert view["bill"]["state"] == "delivered"
    assert sorted(s["result"] or "removed" for s in view["scans"]) == [
        "accepted",
        "accepted",
        "removed",
    ]
    # After closing, scans go to the default bill again.
    assert (await agent.scan("81234560000000033456"))[0].startswith("ACK")
    rows = await agent.daemon.thread.call(agent.daemon.outbox.rows)
    assert rows[-1].bill == "test-dock-ship"


async def test_command_errors_carry_a_code(agent: Any, sock: Path) -> None:
    with pytest.raises(RemoteError) as err:
        await call(sock, "bill.close")
    assert err.value.code == "not_found"
    await call(sock, "bill.open", number="SO-101", type=201)
    with pytest.raises(RemoteError) as err:
        await call(sock, "bill.open", number="SO-102", type=201)
    assert err.value.code == "conflict"
    opened = await call(sock, "bill.open", number="PO-1", type=102)
    assert "no source scans with action purchase" in opened["warning"]


async def test_events_stream_scans_and_bill_changes(agent: Any, sock: Path) -> None:
    stream = await asyncio.to_thread(EventStream, str(sock))
    got: list[dict[str, Any]] = []

    def read(n: int) -> None:
        for event in stream:
            got.append(event)
            if len(got) >= n:
                return

    reader = asyncio.create_task(asyncio.to_thread(read, 4))
    await call(
        sock,
        "bill.import",
        kind="packs",
        csv="product,units,unit_product,name\n8123450,10,8123456,阿莫西林 10盒\n",
    )
    await call(sock, "bill.open", number="SO-103", type=201)
    await agent.scan(UNIT_A, UNIT_A, "81234500000000011111")
    await asyncio.wait_for(reader, 10)
    stream.close()
    assert got[0] == {
        "event": "bill",
        "what": "opened",
        "bill": "SO-103",
        "action": "ship",
        "type": 201,
    }
    assert [(e["verdict"], e["bill"]) for e in got[1:]] == [
        ("accepted", "SO-103"),
        ("duplicate", None),
        ("accepted", "SO-103"),
    ]
    assert got[3]["units"] == 10
    assert got[3]["carton"] is True
    assert got[3]["name"] == "阿莫西林 10盒"
    assert got[2]["reason"] == "duplicate scan"


async def test_lookup_normalises_the_scanned_text(agent: Any, sock: Path) -> None:
    await agent.scan(UNIT_A, "garbage")
    found = await call(sock, "lookup", code=f"]C0{UNIT_A}")
    assert found["code"] == UNIT_A
    assert [s["bill"] for s in found["scans"]] == ["test-dock-ship"]


async def test_a_live_socket_is_never_taken_over(
    agent: Any,
    make_config: Callable[..., Any],
    start_agent: Callable[..., Any],
    sock: Path,
    tmp_path: Path,
) -> None:
    other = await start_agent(
        make_config(control={"socket": str(sock)}, outbox={"path": str(tmp_path / "other.db")})
    )
    assert other.daemon.control is None
    assert "another agent" in (await other.daemon.status())["control"]["error"]
    assert (await call(sock, "hello"))["device_id"] == "test-dock"
    await other.stop()
    assert sock.name in os.listdir(sock.parent)  # still the first agent's


async def test_a_stale_socket_file_is_replaced(
    make_config: Callable[..., Any], start_agent: Callable[..., Any], sock: Path
) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()
    agent = await start_agent(make_config(control={"socket": str(sock), "mode": "0600"}))
    assert agent.daemon.control is not None
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600


_SEEN_AT_CHMOD: dict[str, int] = {}
"""Path -> the socket file's mode when the server first set a mode (see the audit hook)."""


def _note_mode_at_chmod(event: str, args: tuple[Any, ...]) -> None:
    # Audit hooks are process-wide and cannot be removed: this one only notes paths a test
    # registered, at the moment before each chmod of them runs.
    if event == "os.chmod" and str(args[0]) in _SEEN_AT_CHMOD and _SEEN_AT_CHMOD[str(args[0])] < 0:
        with contextlib.suppress(OSError):
            _SEEN_AT_CHMOD[str(args[0])] = stat.S_IMODE(os.lstat(args[0]).st_mode)


sys.addaudithook(_note_mode_at_chmod)


async def test_the_socket_is_never_open_to_others_even_before_its_mode_is_set(
    make_config: Callable[..., Any], start_agent: Callable[..., Any], sock: Path
) -> None:
    """Bound under a tight umask: between bind and chmod the socket is the owner's alone.

    Under a permissive umask (0: a daemon embedded in a program that never set one) a
    socket bound and then chmod'ed is 0777 until the chmod, and any local user may
    connect in that window. The mode is read just before the server's chmod runs.
    """
    _SEEN_AT_CHMOD[str(sock)] = -1
    old = os.umask(0)
    try:
        agent = await start_agent(make_config(control={"socket": str(sock)}))
    finally:
        os.umask(old)
    assert agent.daemon.control is not None
    seen = _SEEN_AT_CHMOD.pop(str(sock))
    assert seen >= 0, "the server set no mode"
    assert seen & 0o077 == 0, f"the socket was {seen:04o} before its mode was set"
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660


def test_client_reports_a_missing_agent(tmp_path: Path) -> None:
    with pytest.raises(ControlUnavailable, match="is it running"):
        ControlClient(str(tmp_path / "none.sock")).call("status")


async def test_cli_bill_commands_and_status(
    agent: Any, sock: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = tmp_path / "expected.csv"
    expected.write_text("product,name,count\n8123456,阿莫西林胶囊,3\n", encoding="utf-8")
    s = ["--socket", str(sock)]

    async def cli(*argv: str) -> tuple[int, str]:
        code = await asyncio.to_thread(cli_main, list(argv))
        return code, capsys.readouterr().out

    code, _out = await cli("bill", "open", "SO-200", "-t", "201", "--expected", str(expected), *s)
    assert code == 0
    await agent.scan(UNIT_A, UNIT_B)
    code, out = await cli("bill", "show", *s)
    assert code == 0
    assert "阿莫西林胶囊" in out
    assert "SO-200" in out
    code, out = await cli("bill", "remove", "--code", UNIT_A, "--reason", "damaged", *s)
    assert (code, f"removed scan 1 {UNIT_A}" in out) == (0, True)
    code, out = await cli("bill", "show", "SO-200", "--json", *s)
    line = json.loads(out)["lines"][0]
    assert (line["expected"], line["scanned"], line["missing"]) == (3, 1, 2)
    code, out = await cli("status", "--json", *s)
    assert json.loads(out)["bills"][0]["number"] == "SO-200"
    code, out = await cli("bill", "close", *s)
    assert "closed SO-200: 1 scan handed to sync\n" in out  # one scan, not "1 scans"
    code, out = await cli("bill", "list", *s)
    assert "SO-200" in out
    code, out = await cli("lookup", UNIT_A, *s)
    assert re.search(r"\sremoval\s+SO-200\s+removed\s+damaged$", out, re.M), out
    code = await asyncio.to_thread(cli_main, ["bill", "close", *s])
    assert code == 1  # a right command that could not be done: nothing is open
    assert "none is open" in capsys.readouterr().err


async def test_bill_open_keeps_platform_params_in_the_history(agent: Any, sock: Path) -> None:
    bill = await call(
        sock,
        "bill.open",
        number="SO-300",
        type=201,
        params={"warehouse_id": "WH-1", "xt_is_check": 0},
    )
    assert bill["state"] == "open"
    history = await call(sock, "bill.history", number="SO-300")
    logged = [e for e in history if e["event"] == "platform-params"]
    assert [json.loads(e["detail"]) for e in logged] == [
        {"warehouse_id": "WH-1", "xt_is_check": "0"}
    ]
    book = agent.daemon.desk.book
    assert await agent.daemon.thread.call(book.platform_params, "SO-300") == {
        "warehouse_id": "WH-1",
        "xt_is_check": "0",
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"warehouse": "WH-1"}, r"params\.warehouse: not an optional parameter"),
        ({"warehouse_id": ["WH-1"]}, r"params\.warehouse_id: expected a string or a number"),
        ("warehouse_id=WH-1", r"params: expected dict"),
    ],
)
async def test_bill_open_refuses_bad_platform_params_naming_them(
    agent: Any, sock: Path, params: Any, message: str
) -> None:
    with pytest.raises(RemoteError, match=message) as err:
        await call(sock, "bill.open", number="SO-301", type=201, params=params)
    assert err.value.code == "bad_request"
    assert await call(sock, "bill.list", state="open") == []  # nothing was opened


async def test_cli_bill_open_takes_platform_params(
    agent: Any, sock: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = ["--socket", str(sock)]

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(cli_main, list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = await cli("bill", "open", "SO-400", "-t", "201", "--param", "bogus=1", *s)
    assert code == 2
    assert "params.bogus: not an optional parameter" in err
    code, out, err = await cli("bill", "open", "SO-400", "-t", "201", "--param", "warehouse_id", *s)
    assert code == 2
    assert "'warehouse_id': expected NAME=VALUE" in err
    code, out, err = await cli(
        "bill",
        "open",
        "SO-400",
        "-t",
        "201",
        "--param",
        "warehouse_id=WH-1",
        "--param",
        "from_address=上海市 浦东新区 A=1",
        *s,
    )
    assert code == 0, err
    assert "platform params: warehouse_id=WH-1 from_address=上海市 浦东新区 A=1" in out
    outbox = str(tmp_path / "outbox.db")  # make_config's outbox
    code, out, err = await cli("bill", "history", "SO-400", "--json", "--outbox", outbox)
    assert code == 0, err
    entries = [json.loads(line) for line in out.splitlines()]  # JSON Lines: a list
    logged = [e for e in entries if e["event"] == "platform-params"]
    assert [json.loads(e["detail"]) for e in logged] == [
        {"warehouse_id": "WH-1", "from_address": "上海市 浦东新区 A=1"}
    ]


@pytest.mark.parametrize("mode", ["999", "rw", "06600"])
def test_a_bad_socket_mode_is_a_config_error_naming_the_key(mode: str) -> None:
    with pytest.raises(ConfigError, match=r"control\.mode"):
        config_from_dict({"control": {"mode": mode}})


def test_control_config_defaults_to_the_runtime_directory() -> None:
    cfg = config_from_dict({"control": {"group": "dispatch"}})
    assert cfg.control.socket == "/run/scanner-agent/control.sock"
    assert cfg.control.mode_bits == 0o660
