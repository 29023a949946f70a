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

from drivers.base import Intake, RawScan, ScanOutcome
from drivers.framing import Frame, LineFramer
from drivers.registry import parse_listen, source_name
from scanner_agent.config import SourceConfig

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 1024
"""Unanswered lines per connection before we stop reading from it."""


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

    async def run(self, intake: Intake) -> None:
        """Serve until cancelled."""
        server = await asyncio.start_server(
            lambda r, w: self._serve(intake, r, w), self.host, self.port, reuse_address=True
        )
        sock = server.sockets[0].getsockname()
        self.bound = (str(sock[0]), int(sock[1]))
        log.info("%s: listening on %s:%d", self.name, *self.bound)
        self.listening.set()
        try:
            async with server:
                await server.serve_forever()
        finally:
            self.listening.clear()

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
        framer = LineFramer(self.terminator, max_frame=self.max_frame)
        replies: asyncio.Queue[asyncio.Task[ScanOutcome] | bytes | None] = asyncio.Queue(
            MAX_IN_FLIGHT
        )
        answer = asyncio.create_task(self._answer(replies, writer))
        try:
            while True:
                try:
                    data = await reader.read(65536)
                except (ConnectionError, OSError):
                    break
                if not data:
                    break
                for event in framer.feed(data):
                    await replies.put(self._submit(intake, event, device))
            for event in framer.flush():
                await replies.put(self._submit(intake, event, device))
        finally:
            await replies.put(None)
            with contextlib.suppress(Exception):
                await answer
            self.clients -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _submit(
        self, intake: Intake, event: object, device: str
    ) -> asyncio.Task[ScanOutcome] | bytes:
        if isinstance(event, Frame):
            scan = RawScan(event.data, source=self.name, device=device)
            return asyncio.create_task(intake.submit(scan))
        log.warning("%s: %s from %s", self.name, getattr(event, "reason", event), device)
        return b"NAK - frame too long\n"

    async def _answer(
        self,
        replies: asyncio.Queue[asyncio.Task[ScanOutcome] | bytes | None],
        writer: asyncio.StreamWriter,
    ) -> None:
        """Await outcomes in arrival order and write the replies (when ack is on)."""
        broken = False
        while True:
            item = await replies.get()
            if item is None:
                return
            line = item if isinstance(item, bytes) else format_reply(await item)
            if not self.ack or broken:
                continue
            try:
                writer.write(line)
                if replies.empty():
                    await writer.drain()
            except (ConnectionError, OSError):
                broken = True  # keep awaiting outcomes: every scan still gets committed


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
