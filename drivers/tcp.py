"""TCP line source: fixed-mount scanners and terminals that send lines over TCP.

Each connection is framed with a :class:`drivers.framing.LineFramer`.  With
``ack = true`` every frame, an empty or over-long one included, gets exactly
one reply line, in order: ``ACK`` once the scan is committed, ``NAK`` when it
is refused, in the grammar of :mod:`drivers.tcp_protocol` (docs/tcp-protocol.md).
Frames from one connection are submitted concurrently (they join the same
group commit) but answered in order.

The port is reachable from the LAN, so every resource a peer can make the
agent spend is bounded (:class:`drivers.tcp_limits.TcpLimits`): frames and
bytes read but not yet answered, per connection and in total (past them the
source stops reading and TCP pushes back on the sender); idle, read and write
timeouts and TCP keepalive; a connection limit at which the longest-idle
connection is evicted so a scanner can always get in; a per-peer rate of
refused frames; an allowlist.  Refusals of connections are logged at a
bounded rate.

This module is the listener (accepting, the allowlist, eviction, the drain at stop); each
connection's reading and replying, and the budget connections share, are in
:mod:`drivers.tcp_conn`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from typing import Any

from drivers import tcp_protocol as proto
from drivers.naming import source_label
from drivers.tcp_conn import READ_SIZE, Connection, Shared, TcpStats
from drivers.tcp_limits import TcpLimits, allowed, parse_allowlist
from drivers.tcp_stream import StoppableReader
from scanner_agent.kernel import LISTEN_ANY, Intake, parse_host_port

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 5.0
"""At stop, how long connections get to have their last lines committed and answered."""


class TcpSource:
    """Listens on ``host:port`` and submits every received frame, within its limits."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        ack: bool = False,
        terminator: str = "lf",
        protocol: int = proto.VERSION,
        limits: TcpLimits | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        limits = limits if limits is not None else TcpLimits()
        self._shared = Shared(name, ack, terminator, protocol, limits)
        self.bound: tuple[str, int] | None = None
        """The real address once listening (useful with port 0)."""
        self.listening = asyncio.Event()
        self._conns: dict[asyncio.Task[Any], Connection] = {}

    @property
    def ack(self) -> bool:
        """Whether every frame gets a reply line."""
        return self._shared.ack

    @property
    def terminator(self) -> str:
        """The line terminator frames end with."""
        return self._shared.terminator

    @property
    def protocol(self) -> int:
        """The reply grammar's version (docs/tcp-protocol.md)."""
        return self._shared.protocol

    @property
    def limits(self) -> TcpLimits:
        """The bounds of this source."""
        return self._shared.limits

    @property
    def stats(self) -> TcpStats:
        """What the bounds did since start."""
        return self._shared.stats

    @property
    def max_frame(self) -> int:
        """Longest frame accepted, in bytes."""
        return self.limits.max_frame

    @property
    def clients(self) -> int:
        """Connections open now."""
        return len(self._conns)

    def counters(self) -> dict[str, Any]:
        """What the bounds did since start, for ``status`` and metrics: ``source``,
        ``listen``, ``clients`` open now and every :class:`TcpStats` field."""
        host, port = self.bound if self.bound is not None else (self.host, self.port)
        return {
            "source": self.name,
            "listen": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "clients": self.clients,
            **dataclasses.asdict(self.stats),
        }

    async def run(self, intake: Intake) -> None:
        """Serve until cancelled; then drain connections gracefully.

        On cancel the listener closes, every connection stops reading, and the
        lines already read are still committed and answered (the committer runs
        until sources have stopped), so a clean stop never leaves a committed
        scan without its ACK.
        """

        def protocol() -> asyncio.StreamReaderProtocol:
            # asyncio.start_server's own factory, with a reader a stop can end.
            return asyncio.StreamReaderProtocol(
                StoppableReader(READ_SIZE), lambda r, w: self._serve(intake, r, w)
            )

        loop = asyncio.get_running_loop()
        server = await loop.create_server(protocol, self.host, self.port, reuse_address=True)
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
            self._shared.flush_logs(force=True)

    async def _drain_connections(self) -> None:
        for conn in self._conns.values():
            conn.reader.stop()  # the handler reads what has arrived, answers it, then ends
            conn.wake.set()
        handlers = set(self._conns)
        if not handlers:
            return
        _, late = await asyncio.wait(handlers, timeout=DRAIN_TIMEOUT_S)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    # -- connections -------------------------------------------------------------

    async def _serve(
        self, intake: Intake, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        device = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        if not allowed(host, self.limits.allow):
            self._refuse(writer, f"{self.name}: refused {device}: not in the source's allowlist")
            return
        if len(self._conns) >= self.limits.max_clients and not self._evict_one(device):
            self._refuse(
                writer,
                f"{self.name}: refused {device}: {len(self._conns)} connections "
                f"(max_clients), none idle",
            )
            return
        task = asyncio.current_task()
        assert task is not None
        assert isinstance(reader, StoppableReader)  # made by run()'s protocol factory
        conn = self._conns[task] = Connection(self._shared, host, device, reader, writer, task)
        self.stats.connections += 1
        self._tune_socket(writer)
        try:
            await conn.serve(intake)
        finally:
            self._conns.pop(task, None)
            self._shared.flush_logs()
            try:
                await conn.linger()  # the replies reach the peer before the socket closes
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    def _refuse(self, writer: asyncio.StreamWriter, message: str) -> None:
        self.stats.refused += 1
        self._shared.refused_log.note(message)
        writer.transport.abort()

    def _evict_one(self, newcomer: str) -> bool:
        """Close the longest-idle connection to make room; False if every one is busy.

        Idle means nothing in flight.  Connections that never had a scan
        accepted go first, so a scanner that has been sending good reads keeps
        its slot against a crowd of connections that send nothing.
        """
        idle = [c for c in self._conns.values() if c.frames == 0 and not c.stop_reading]
        if not idle:
            return False
        victim = min(idle, key=lambda c: (c.accepted > 0, c.last_activity))
        del self._conns[victim.task]
        victim.close_now()
        self.stats.evicted += 1
        idle_s = asyncio.get_running_loop().time() - victim.last_activity
        self._shared.evicted_log.note(
            f"{self.name}: closed {victim.device}, idle {idle_s:.0f} s, to let {newcomer} in "
            f"(max_clients {self.limits.max_clients})"
        )
        return True

    def _tune_socket(self, writer: asyncio.StreamWriter) -> None:
        """TCP keepalive (and a matching user timeout) so half-open connections are found."""
        sock = writer.get_extra_info("socket")
        params = self.limits.keepalive_params()
        if sock is None or params is None:
            return
        idle, interval, count = params
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if hasattr(socket, "TCP_KEEPIDLE"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
            if hasattr(socket, "TCP_USER_TIMEOUT"):
                # Replies unacknowledged this long also mean a dead peer.
                ms = (idle + interval * count) * 1000
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, ms)


def build(name: str, options: dict[str, Any]) -> TcpSource:
    """Factory used by :mod:`drivers.registry`."""
    host, port = parse_host_port(options["listen"], "listen", default_host=LISTEN_ANY)
    return TcpSource(
        source_label("tcp", name, options["listen"]),
        host,
        port,
        ack=options["ack"],
        terminator=options["terminator"],
        protocol=options["protocol"],
        limits=TcpLimits(
            max_clients=options["max_clients"],
            max_frame=options["max_frame"],
            max_in_flight=options["max_in_flight"],
            max_in_flight_bytes=options["max_in_flight_bytes"],
            total_in_flight=options["total_in_flight"],
            total_in_flight_bytes=options["total_in_flight_bytes"],
            idle_timeout_s=options["idle_timeout_s"],
            read_timeout_s=options["read_timeout_s"],
            write_timeout_s=options["write_timeout_s"],
            keepalive_s=options["keepalive_s"],
            refused_per_s=options["refused_per_s"],
            refused_burst=options["refused_burst"],
            allow=parse_allowlist(options["allow"]),
        ),
    )
