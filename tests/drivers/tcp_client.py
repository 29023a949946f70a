"""A fixed-mount scanner (or conveyor controller) on a real TCP connection, for the tests.

It speaks the protocol as docs/tcp-protocol.md writes it: frames out, one
reply line per frame back, every line checked against the grammar by
:func:`drivers.tcp_protocol.parse_reply`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

from drivers.tcp import TcpSource
from drivers.tcp_protocol import Reply, parse_reply
from scanner_agent.config import AgentConfig
from scanner_agent.daemon import Daemon
from tests.support.agent import run_until_ready

REPLY_TIMEOUT_S = 30.0
"""Longest wait for one reply before the test fails (a hang is a failure, not a wait)."""


class Scanner:
    """One connection; every reply it reads must follow the grammar."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1", *, local: str = "") -> Scanner:
        """Connect to the source; ``local`` binds the client to an address (127.0.0.x is a
        different peer on loopback)."""
        local_addr = (local, 0) if local else None
        reader, writer = await asyncio.open_connection(
            host, port, limit=1 << 22, local_addr=local_addr
        )
        return cls(reader, writer)

    async def send(self, *frames: bytes, end: bytes = b"\n") -> None:
        self.writer.write(b"".join(f + end for f in frames))
        await self.writer.drain()

    async def line(self, within: float = REPLY_TIMEOUT_S) -> bytes:
        """The next raw reply line (b"" at EOF)."""
        async with asyncio.timeout(within):
            return await self.reader.readline()

    async def reply(self, within: float = REPLY_TIMEOUT_S) -> Reply:
        line = await self.line(within)
        assert line, "connection closed before the reply"
        return parse_reply(line)

    async def replies(self, n: int) -> list[Reply]:
        return [await self.reply() for _ in range(n)]

    async def scan(self, *frames: bytes) -> list[Reply]:
        """Send frames and read one reply per frame; each echoes its frame."""
        await self.send(*frames)
        got = await self.replies(len(frames))
        assert [r.echo for r in got] == list(frames)
        return got

    async def close(self) -> None:
        self.writer.close()
        with suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


@asynccontextmanager
async def tcp_agent(
    make_config: Callable[..., AgentConfig], /, **options: Any
) -> AsyncIterator[tuple[Daemon, TcpSource]]:
    """A daemon built from a config with one ``tcp`` source on a free loopback port."""
    outbox = options.pop("outbox", {})
    sections = {"metrics": options.pop("metrics")} if "metrics" in options else {}
    source = {"type": "tcp", "listen": "127.0.0.1:0", "ack": True, **options}
    cfg = make_config(
        sync={"enabled": False}, control={"socket": ""}, source=[source], outbox=outbox, **sections
    )
    daemon = Daemon(cfg)
    task = await run_until_ready(daemon)
    try:
        src = daemon.sources[0]
        assert isinstance(src, TcpSource)
        yield daemon, src
    finally:
        daemon.request_stop()
        await task


def port_of(source: TcpSource) -> int:
    assert source.bound is not None
    return source.bound[1]


class BlockingScanner:
    """A scanner on a plain blocking socket, for tests whose daemon runs in another thread."""

    def __init__(self, port: int, timeout: float = REPLY_TIMEOUT_S) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def send(self, *frames: bytes, end: bytes = b"\n") -> None:
        self.sock.sendall(b"".join(f + end for f in frames))

    def reply(self) -> Reply:
        line = self.file.readline()
        assert line, "connection closed before the reply"
        return parse_reply(line)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@contextmanager
def agent_thread(cfg: AgentConfig) -> Iterator[TcpSource]:
    """Run a daemon from ``cfg`` (one tcp source) on its own event loop in a thread."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        daemon = Daemon(cfg)
        box["loop"], box["daemon"] = asyncio.get_running_loop(), daemon
        try:
            task = await run_until_ready(daemon)
        finally:
            started.set()
        await task

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the test thread
            box["error"] = exc
            started.set()

    thread = threading.Thread(target=run, name="agent", daemon=True)
    thread.start()
    started.wait(60)
    if "error" in box:
        raise box["error"]
    daemon: Daemon = box["daemon"]
    try:
        src = daemon.sources[0]
        assert isinstance(src, TcpSource)
        yield src
    finally:
        box["loop"].call_soon_threadsafe(daemon.request_stop)
        thread.join(60)
        assert not thread.is_alive(), "the daemon did not stop"
        if "error" in box:
            raise box["error"]
