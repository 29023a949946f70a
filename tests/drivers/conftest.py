"""Driver test fixtures: a real daemon (real SQLite outbox, sync off) reading one source."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from scanner_agent.config import AgentConfig
from scanner_agent.daemon import Daemon
from scanner_agent.kernel import Source
from tests.support.agent import run_until_ready
from tests.support.drivers import AgentRun


@pytest.fixture
async def run_source(
    make_config: Callable[..., AgentConfig],
) -> AsyncIterator[Callable[[Source], Awaitable[AgentRun]]]:
    """Start a daemon around a prepared source; it is stopped at the end of the test."""
    runs: list[AgentRun] = []

    async def start(source: Source, **kwargs: Any) -> AgentRun:
        cfg = make_config(sync={"enabled": False}, **kwargs)
        daemon = Daemon(cfg, sources=[(source, "ship", "")])
        run = AgentRun(cfg, daemon, await run_until_ready(daemon))
        runs.append(run)
        return run

    yield start
    for run in runs:
        if not run.task.done():
            await run.stop()
