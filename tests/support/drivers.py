"""A daemon reading one injected source, and the trace codes the driver tests scan."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from drivers.profiles import parse_profile
from drivers.serialport import SerialSource
from scanner_agent.config import AgentConfig
from scanner_agent.daemon import Daemon
from scanner_agent.outbox import Outbox, OutboxRow


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


RunSource = Callable[[SerialSource], Awaitable[AgentRun]]


PLAIN = parse_profile(
    "test-plain",
    """
[profile]
vendor = "Test"
model = "Plain"
interfaces = ["rs232"]
[serial]
protocol = "plain"
baudrate = 115200
[framing]
terminator = "crlf"
[commands]
good_read = "G"
bad_read = "B"
duplicate_read = "D"
""",
)
