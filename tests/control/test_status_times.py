"""Every time in ``status`` is ISO 8601 with an offset; people see it local, zone shown.

A real daemon syncs to the real reference service (one code refused by it),
so every time field in ``status`` has a value: the last scan per source, the
last successful send, a refusal's time.  Version 2 of the control protocol
(the default) gives them as ISO 8601; a client that asks for version 1 still
gets the Unix-time numbers it was written for.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.cli import main as cli_main
from scanner_agent.config import AgentConfig
from scanner_agent.control import PROTOCOL_VERSION, ControlClient
from scanner_agent.times import local, parse_time
from scanner_agent.traceserver import TraceServerThread
from tests.support.agent import TOKEN
from tests.support.cli import json_problems

GOOD = "81234560000000011234"
REFUSED = "81234560000000022345"


def raw_call(sock: Path, request: dict[str, Any]) -> dict[str, Any]:
    """One request line as any client would send it, with or without ``v``."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(sock))
        s.sendall(json.dumps(request).encode() + b"\n")
        reply = s.makefile("rb").readline()
    result: dict[str, Any] = json.loads(reply)
    return result


async def test_status_times_are_iso_for_programs_and_local_for_people(
    tmp_path: Path,
    make_config: Callable[..., AgentConfig],
    start_agent: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
    shanghai: None,
) -> None:
    sock = tmp_path / "control.sock"
    with TraceServerThread(
        tmp_path / "trace.db", TOKEN, reject_codes=frozenset({REFUSED})
    ) as service:
        agent = await start_agent(make_config(service.url, control={"socket": str(sock)}))
        await agent.scan(GOOD, REFUSED)
        await agent.drained()

        def status(request: dict[str, Any]) -> dict[str, Any]:
            reply = raw_call(sock, {"id": 1, "cmd": "status", **request})
            assert reply["ok"] is True, reply
            result: dict[str, Any] = reply["result"]
            return result

        v2, no_v, v1 = await asyncio.gather(
            asyncio.to_thread(status, {"v": 2}),
            asyncio.to_thread(status, {}),
            asyncio.to_thread(status, {"v": 1}),
        )
        hello = await asyncio.to_thread(raw_call, sock, {"id": 2, "cmd": "hello"})

        def cli(*argv: str) -> str:
            assert cli_main([*argv, "--socket", str(sock)]) == 0
            return capsys.readouterr().out

        text = await asyncio.to_thread(cli, "status")
        data = json.loads(await asyncio.to_thread(cli, "status", "--json"))

    assert hello["result"]["protocol"] == PROTOCOL_VERSION == 2
    assert hello["result"]["protocols"] == [1, 2]

    # Version 2 (asked for, or by default): ISO 8601 everywhere, no Unix-time numbers.
    (source,) = v2["sources"]
    sync = v2["sync"]
    for st in (v2, no_v, data):
        assert json_problems(st) == [], st
        assert parse_time(st["last_scan_at"][source]) is not None
    assert sync["last_success_at"] is not None
    (rejection,) = sync["recent_rejections"]
    assert rejection["code"] == REFUSED
    assert sync["retry_at"] is None

    # Version 1: the same moments, as the Unix times version 1 clients were written for.
    assert isinstance(v1["last_scan_at"][source], float)
    assert isinstance(v1["sync"]["last_success_at"], float)
    assert isinstance(v1["sync"]["recent_rejections"][0]["at"], float)
    for iso_at, unix in (
        (v2["last_scan_at"][source], v1["last_scan_at"][source]),
        (sync["last_success_at"], v1["sync"]["last_success_at"]),
        (rejection["at"], v1["sync"]["recent_rejections"][0]["at"]),
    ):
        moment = parse_time(iso_at)
        assert moment is not None
        assert abs(moment.timestamp() - unix) < 0.01
    assert v1["last_error_at"] == v2["last_error_at"]  # already ISO in version 1
    assert {k: v for k, v in v1.items() if k not in ("last_scan_at", "sync", "uptime_s")} == {
        k: v for k, v in v2.items() if k not in ("last_scan_at", "sync", "uptime_s")
    } | {"control": v1["control"]}

    # People: local time (Asia/Shanghai here) with the zone, never an ISO string.
    assert re.search(rf"^last sent +{local(sync['last_success_at'])}$", text, re.M), text
    assert local(sync["last_success_at"]).endswith(" CST")
    assert f"last scan {local(v2['last_scan_at'][source])}" in text, text
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d", text), text


async def test_a_request_for_a_version_the_agent_does_not_speak_is_refused(
    tmp_path: Path,
    make_config: Callable[..., AgentConfig],
    start_agent: Callable[..., Any],
) -> None:
    sock = tmp_path / "control.sock"
    await start_agent(make_config(sync={"enabled": False}, control={"socket": str(sock)}))
    for v in (0, 3, "2"):
        reply = await asyncio.to_thread(raw_call, sock, {"v": v, "id": 1, "cmd": "status"})
        assert reply["ok"] is False
        assert reply["error"]["code"] == "unsupported_version"

    def with_client() -> Any:
        with ControlClient(str(sock)) as client:
            return client.call("status")

    assert json_problems(await asyncio.to_thread(with_client)) == []
