"""Shared fixtures: a real reference trace service on loopback, real SQLite files."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.tcp import TcpSource
from drivers.tcp_protocol import parse_reply
from scanner_agent.config import AgentConfig, config_from_dict
from scanner_agent.daemon import Daemon
from scanner_agent.traceserver import TraceServerThread
from tests.support.postgres import MISSING, PostgresCluster, find_bindir

TOKEN = "test-token"


def acks(*codes: str) -> list[str]:
    """The reply lines (LF removed) for cn20 codes that were all committed: the frame
    echoed, the kind, then the stored code, which for a cn20 code is the frame itself
    (docs/tcp-protocol.md)."""
    return [f"ACK {c}\taccepted\t{c}" for c in codes]


@pytest.fixture
def trace_server(tmp_path: Path) -> Iterator[TraceServerThread]:
    """The reference trace service, running for real on a free loopback port."""
    with TraceServerThread(tmp_path / "trace.db", TOKEN) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A real PostgreSQL server for the session, started on first use (tests/support/postgres.py).

    Fails, never skips, when PostgreSQL is not installed: `make test` installs it.
    """
    bindir = find_bindir()
    if bindir is None:
        pytest.fail(MISSING, pytrace=False)
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh, empty database on the session's PostgreSQL server: its libpq URI."""
    return postgres_cluster.create_database()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def make_config(tmp_path: Path, token_file: Path) -> Callable[..., AgentConfig]:
    """Build a validated config pointing at ``url`` with a temporary outbox."""

    def make(url: str = "http://127.0.0.1:9", **sections: Any) -> AgentConfig:
        data: dict[str, Any] = {
            "device_id": "test-dock",
            "outbox": {"path": str(tmp_path / "outbox.db"), "min_free_mb": 0},
            "sync": {
                "url": url,
                "token_file": str(token_file),
                "idle_poll_s": 0.05,
                "backoff_initial_s": 0.02,
                "backoff_max_s": 0.2,
            },
        }
        for key, value in sections.items():
            if isinstance(value, dict):
                data.setdefault(key, {}).update(value)
            else:
                data[key] = value
        return config_from_dict(data)

    return make


async def run_until_ready(daemon: Daemon) -> asyncio.Task[None]:
    """Start ``daemon.run()`` and return its task once the daemon is ready.

    A daemon that fails to start raises its error here instead.
    """
    task = asyncio.create_task(daemon.run())
    ready = asyncio.create_task(daemon.wait_ready())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        await task
    return task


class RunningAgent:
    """A daemon running in the test's event loop with one TCP source (ack on)."""

    def __init__(self, daemon: Daemon, source: TcpSource, task: asyncio.Task[None]) -> None:
        self.daemon = daemon
        self.source = source
        self.task = task

    @property
    def port(self) -> int:
        assert self.source.bound is not None
        return self.source.bound[1]

    async def scan(self, *lines: str) -> list[str]:
        """Send lines like a scanner and return the ACK/NAK replies (LF removed), in order.

        Every reply must follow the protocol's grammar and echo its line.
        """
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(b"".join(line.encode() + b"\r\n" for line in lines))
            await writer.drain()
            raw = [await reader.readline() for _ in lines]
            assert [parse_reply(r).echo for r in raw] == [line.encode() for line in lines]
            return [r.decode().rstrip("\n") for r in raw]
        finally:
            writer.close()
            await writer.wait_closed()

    async def drained(self, within: float = 20.0) -> None:
        """Wait until the outbox has no backlog."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (await self.daemon.queue_stats()).backlog:
            if loop.time() > deadline:
                raise AssertionError(f"outbox not drained: {await self.daemon.status()}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.daemon.request_stop()
        await self.task


@pytest.fixture
async def start_agent() -> AsyncIterator[Callable[..., Any]]:
    """Start daemons for a test; every one still running is stopped at the end."""
    running: list[RunningAgent] = []

    async def start(cfg: AgentConfig, *, action: str = "ship", bill: str = "") -> RunningAgent:
        source = TcpSource("tcp:test", "127.0.0.1", 0, ack=True)
        daemon = Daemon(cfg, sources=[(source, action, bill)])
        agent = RunningAgent(daemon, source, await run_until_ready(daemon))
        running.append(agent)
        return agent

    yield start
    for agent in running:
        if not agent.task.done():
            await agent.stop()


@pytest.fixture
def shanghai(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The local zone is Asia/Shanghai (CST, +08:00) for this process and its children."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
