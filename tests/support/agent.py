"""A daemon run in the test's event loop and the words it answers a scanner with."""

from __future__ import annotations

import asyncio

from drivers.tcp import TcpSource
from drivers.tcp_protocol import parse_reply
from scanner_agent.daemon import Daemon
from tests.support.polling import eventually

TOKEN = "test-token"


def acks(*codes: str) -> list[str]:
    """The reply lines (LF removed) for cn20 codes that were all committed: the frame
    echoed, the kind, then the stored code, which for a cn20 code is the frame itself
    (docs/tcp-protocol.md)."""
    return [f"ACK {c}\taccepted\t{c}" for c in codes]


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

        async def drained() -> bool:
            return not (await self.daemon.queue_stats()).backlog

        try:
            await eventually(drained, within, "the outbox to drain")
        except AssertionError:
            raise AssertionError(f"outbox not drained: {await self.daemon.status()}") from None

    async def stop(self) -> None:
        self.daemon.request_stop()
        await self.task
