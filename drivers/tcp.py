"""TCP line source: fixed-mount scanners and terminals that send lines over TCP.

Each connection is framed with a :class:`drivers.framing.LineFramer`.  With
``ack = true`` every frame, an empty or over-long one included, gets exactly
one reply line, in order: ``ACK`` once the scan is committed, ``NAK`` when it
is refused, in the grammar of :mod:`drivers.tcp_protocol` (docs/tcp-protocol.md).
Frames from one connection are submitted concurrently (they join the same
group commit) but answered in order; a cap on unanswered frames per
connection pushes back on a sender that never reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from drivers import tcp_protocol as proto
from drivers.base import Intake, RawScan, ScanOutcome, utc_now
from drivers.framing import Frame, FrameEvent, LineFramer
from drivers.registry import parse_listen, source_name
from scanner_agent.config import SourceConfig

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256
"""Unanswered reads per connection before we stop reading from it."""

DRAIN_TIMEOUT_S = 5.0
"""At stop, how long connections get to have their last lines committed and answered."""

_Batch = tuple[asyncio.Task[list[ScanOutcome]], list[bytes]]
"""Frames submitted together: the task that answers them, and the frames (for the echo)."""
_Reply = _Batch | bytes
"""What the answering task gets per batch: pending outcomes, or a ready-made reply line."""


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
        protocol: int = proto.VERSION,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.ack = ack
        self.terminator = terminator
        self.max_frame = max_frame
        self.max_clients = max_clients
        self.protocol = protocol
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
        framer = LineFramer(self.terminator, max_frame=self.max_frame, keep_empty=True)
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
            if isinstance(event, Frame) and event.data and self._hello(event.data) is None:
                scans.append(RawScan(event.data, self.name, device, now))  # positional: per frame
                continue
            if scans:
                await self._put_batch(intake, scans, replies)
                scans = []
            await replies.put(self._own_reply(event, device))
        if scans:
            await self._put_batch(intake, scans, replies)

    async def _put_batch(
        self, intake: Intake, scans: list[RawScan], replies: asyncio.Queue[_Reply | None]
    ) -> None:
        task = asyncio.create_task(intake.submit_many(scans))
        await replies.put((task, [s.data for s in scans]))

    def _hello(self, frame: bytes) -> bytes | None:
        """The reply to a HELLO frame, or None when the frame is no HELLO."""
        asked = proto.hello_version(frame)
        if asked is None:
            return None
        return proto.format_hello(
            {
                "max_frame": self.max_frame,
                "terminator": self.terminator,
                "max_clients": self.max_clients,
            },
        )

    def _own_reply(self, event: FrameEvent, device: str) -> bytes:
        """The reply to a frame the source answers itself: a HELLO, an empty or over-long one."""
        if isinstance(event, Frame):
            hello = self._hello(event.data)
            if hello is not None:
                return hello
            kind, reason, head = proto.EMPTY, "empty frame", b""
        else:
            log.warning("%s: %s from %s", self.name, event.reason, device)
            kind, reason, head = proto.TOO_LONG, event.reason, event.head
        if self.protocol == 1:
            return proto.format_legacy(None, reason)
        return proto.format_refusal(head, kind, reason, self.max_frame)

    def _format(self, frames: list[bytes], outcomes: list[ScanOutcome]) -> bytes:
        if self.protocol == 1:
            return b"".join(proto.format_legacy(o) for o in outcomes)
        return b"".join(
            proto.format_outcome(f, o, self.max_frame)
            for f, o in zip(frames, outcomes, strict=True)
        )

    async def _answer(
        self, replies: asyncio.Queue[_Reply | None], writer: asyncio.StreamWriter
    ) -> None:
        """Await outcomes in arrival order and write the replies (when ack is on)."""
        broken = False
        while True:
            item = await replies.get()
            if item is None:
                return
            if isinstance(item, bytes):
                data = item
            else:
                task, frames = item
                data = self._format(frames, await task)
            if not self.ack or broken:
                continue  # keep awaiting outcomes: every scan still gets committed
            try:
                writer.write(data)
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
        protocol=options["protocol"],
    )
