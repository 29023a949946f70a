"""TCP line source: fixed-mount scanners and terminals that send lines over TCP.

Each connection is framed with a :class:`drivers.framing.LineFramer`.  With
``ack = true`` every line is answered, in order, with ``ACK <code>`` once the
scan is committed or ``NAK <code> <reason>`` when it is refused, so the
sending device can beep and retry.  Lines from one connection are submitted
concurrently (they join the same group commit) but answered in order; a cap
on unanswered lines per connection pushes back on a sender that never reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from drivers.base import Intake, RawScan, ScanOutcome, utc_now
from drivers.framing import Frame, FrameEvent, LineFramer
from drivers.registry import parse_listen, source_name
from scanner_agent.config import SourceConfig

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256
"""Unanswered reads per connection before we stop reading from it."""

DRAIN_TIMEOUT_S = 5.0
"""At stop, how long connections get to have their last lines committed and answered."""

_Reply = asyncio.Task[list[ScanOutcome]] | list[bytes]
"""What the answering task gets per read: pending outcomes, or ready-made lines."""


def format_reply(outcome: ScanOutcome) -> bytes:
    """``ACK <code>`` or ``NAK <code> <reason>`` as one LF-terminated line."""
    code = outcome.code or "-"
    if outcome.accepted:
        return f"ACK {code}\n".encode()
    return f"NAK {code} {outcome.reason or outcome.verdict.value}\n".encode()


class TcpSource:
    """Listens on ``host:port`` and submits every received line."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        ack: bool = False,
        terminator: str = "lf",
        max_frame: int = 4096,
        max_clients: int = 32,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.ack = ack
        self.terminator = terminator
        self.max_frame = max_frame
        self.max_clients = max_clients
        self.bound: tuple[str, int] | None = None
        """The real address once listening (useful with port 0)."""
        self.listening = asyncio.Event()
        self.clients = 0
        self._connections: dict[
            asyncio.StreamReader, tuple[asyncio.StreamWriter, asyncio.Task[Any]]
        ] = {}

    async def run(self, intake: Intake) -> None:
        """Serve until cancelled; then drain connections gracefully.

        On cancel the listener closes, every connection stops reading, and the
        lines already read are still committed and answered (the committer runs
        until sources have stopped), so a clean stop never leaves a committed
        scan without its ACK.
        """
        server = await asyncio.start_server(
            lambda r, w: self._serve(intake, r, w), self.host, self.port, reuse_address=True
        )
        sock = server.sockets[0].getsockname()
        self.bound = (str(sock[0]), int(sock[1]))
        log.info("%s: listening on %s:%d", self.name, *self.bound)
        self.listening.set()
        try:
            await server.serve_forever()
        finally:
            self.listening.clear()
            server.close()
            await self._drain_connections()
            await server.wait_closed()

    async def _drain_connections(self) -> None:
        for reader, (writer, _) in self._connections.items():
            # Stop the socket first: data arriving after EOF would break the reader.
            transport = writer.transport
            if isinstance(transport, asyncio.ReadTransport) and not transport.is_closing():
                transport.pause_reading()
            reader.feed_eof()  # the handler stops reading and answers what it has
        handlers = {task for _, task in self._connections.values()}
        if not handlers:
            return
        _, late = await asyncio.wait(handlers, timeout=DRAIN_TIMEOUT_S)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    async def _serve(
        self, intake: Intake, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        device = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        if self.clients >= self.max_clients:
            log.warning("%s: refusing %s, %d clients already", self.name, device, self.clients)
            writer.close()
            return
        self.clients += 1
        task = asyncio.current_task()
        if task is not None:
            self._connections[reader] = (writer, task)
        framer = LineFramer(self.terminator, max_frame=self.max_frame)
        # Each read's frames are submitted together (one group-commit entry) and answered
        # in order; the bounded queue stops reading from a sender that never reads replies.
        replies: asyncio.Queue[_Reply | None] = asyncio.Queue(MAX_IN_FLIGHT)
        answer = asyncio.create_task(self._answer(replies, writer))
        try:
            while True:
                try:
                    data = await reader.read(65536)
                except (ConnectionError, OSError):
                    break
                if not data:
                    break
                await self._submit(intake, framer.feed(data), device, replies)
            await self._submit(intake, framer.flush(), device, replies)
        finally:
            await replies.put(None)
            with contextlib.suppress(Exception):
                await answer
            self._connections.pop(reader, None)
            self.clients -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _submit(
        self,
        intake: Intake,
        events: list[FrameEvent],
        device: str,
        replies: asyncio.Queue[_Reply | None],
    ) -> None:
        scans: list[RawScan] = []
        now = utc_now()  # frames of one read arrived together: one capture time
        for event in events:
            if isinstance(event, Frame):
                scans.append(RawScan(event.data, self.name, device, now))  # positional: per frame
                continue
            if scans:
                await replies.put(asyncio.create_task(intake.submit_many(scans)))
                scans = []
            log.warning("%s: %s from %s", self.name, event.reason, device)
            await replies.put([b"NAK - frame too long\n"])
        if scans:
            await replies.put(asyncio.create_task(intake.submit_many(scans)))

    async def _answer(
        self, replies: asyncio.Queue[_Reply | None], writer: asyncio.StreamWriter
    ) -> None:
        """Await outcomes in arrival order and write the replies (when ack is on)."""
        broken = False
        while True:
            item = await replies.get()
            if item is None:
                return
            lines = item if isinstance(item, list) else [format_reply(o) for o in await item]
            if not self.ack or broken:
                continue  # keep awaiting outcomes: every scan still gets committed
            try:
                writer.write(b"".join(lines))
                if replies.empty():
                    await writer.drain()
            except (ConnectionError, OSError):
                broken = True


def build(src: SourceConfig, options: dict[str, Any]) -> TcpSource:
    """Factory used by :mod:`drivers.registry`."""
    host, port = parse_listen(options["listen"])
    return TcpSource(
        source_name(src, options),
        host,
        port,
        ack=options["ack"],
        terminator=options["terminator"],
        max_frame=options["max_frame"],
        max_clients=options["max_clients"],
    )
