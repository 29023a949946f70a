"""Shared fixtures: a real reference trace service on loopback, real SQLite files."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.tcp import TcpSource
from scanner_agent.config import AgentConfig, config_from_dict
from scanner_agent.daemon import Daemon
from scanner_agent.traceserver import TraceServerThread
from tests.support.agent import TOKEN, RunningAgent, run_until_ready
from tests.support.postgres import MISSING, PostgresCluster, find_bindir


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
