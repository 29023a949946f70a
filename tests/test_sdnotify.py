"""systemd notify messages, received on a real NOTIFY_SOCKET datagram socket."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.config import AgentConfig
from scanner_agent.ops.sdnotify import Notifier, watchdog_interval_s


def test_notifier_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert Notifier().notify(ready=1) is False


def test_watchdog_interval_is_half_the_timeout_and_only_for_our_pid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval_s() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval_s() is None
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    monkeypatch.delenv("WATCHDOG_PID")
    assert watchdog_interval_s() is None


async def test_daemon_sends_ready_watchdog_and_status_once_started(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_config: Callable[..., AgentConfig],
    start_agent: Any,
) -> None:
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    loop = asyncio.get_running_loop()
    agent = await start_agent(make_config(sync={"enabled": False}))
    messages: list[str] = []
    async with asyncio.timeout(10):
        while sum(m.startswith("WATCHDOG=1") for m in messages) < 2:
            messages.append((await loop.sock_recv(sock, 4096)).decode())
    assert messages[0].startswith("READY=1")
    assert any(m.startswith("STATUS=backlog 0, link disabled") for m in messages)
    await agent.stop()
    async with asyncio.timeout(10):
        while "STOPPING=1" not in messages:
            messages.append((await loop.sock_recv(sock, 4096)).decode())
    sock.close()
