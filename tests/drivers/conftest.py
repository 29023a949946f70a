"""Driver test fixtures: a real daemon (real SQLite outbox, sync off) reading one source."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from scanner_agent.config import AgentConfig
from scanner_agent.daemon import Daemon
from scanner_agent.kernel import Source
from scanner_agent.outbox import Outbox, OutboxRow
from tests.conftest import run_until_ready


def cn20(i: int) -> str:
    """A distinct, valid 20-digit trace code."""
    return f"8123456{i:09d}0000"


class AgentRun:
    """A daemon running in the test's loop with one injected source."""

    def __init__(self, cfg: AgentConfig, daemon: Daemon, task: asyncio.Task[None]) -> None:
        self.cfg = cfg
        self.daemon = daemon
        self.task = task

    async def rows(self) -> list[OutboxRow]:
        thread = self.daemon.thread
        assert thread is not None
        return await thread.call(thread.outbox.rows)

    async def codes(self) -> list[str]:
        return [r.code for r in await self.rows()]

    async def stop(self) -> list[str]:
        """Stop cleanly; return every code in the outbox file (read afresh)."""
        if not self.task.done():
            self.daemon.request_stop()
        await self.task
        with Outbox.open(self.cfg.outbox.path) as outbox:
            return [r.code for r in outbox.rows()]


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
