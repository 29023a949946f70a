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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from dataclasses import dataclass
from typing import Any, NamedTuple

from drivers import tcp_protocol as proto
from drivers.framing import Frame, FrameEvent, LineFramer
from drivers.registry import LISTEN_ANY, source_name
from drivers.tcp_limits import LogThrottle, PeerBuckets, TcpLimits, allowed, parse_allowlist
from scanner_agent.kernel import Intake, RawScan, ScanOutcome, Verdict, parse_host_port, utc_now

log = logging.getLogger(__name__)

READ_SIZE = 16 * 1024
"""Bytes asked of a connection per read.  A read's frames are all submitted before the
next read, so one read holds at most READ_SIZE / 2 frames (one-byte lines), and the
stream reader buffers at most twice this much per connection."""

DRAIN_TIMEOUT_S = 5.0
"""At stop, how long connections get to have their last lines committed and answered."""

_NOT_REFUSALS = (Verdict.ACCEPTED, Verdict.FULL, Verdict.ERROR)
"""Outcomes that do not count against a peer's refused-frames rate: its scan was good
(full and error are the agent's own trouble, not the peer's)."""


class _Batch(NamedTuple):
    """Frames submitted together: the task that answers them, the frames (for the echo)."""

    task: asyncio.Task[list[ScanOutcome]]
    frames: list[bytes]
    cost: int
    """Bytes in flight they hold."""


class _Own(NamedTuple):
    """A reply the source gives itself (HELLO, an empty, over-long or timed-out frame)."""

    line: bytes
    refused: bool
    cost: int


_Reply = _Batch | _Own


@dataclass
class TcpStats:
    """Counters of one TCP source since start (for logs, tests and the attack bench)."""

    connections: int = 0
    """Connections accepted."""
    refused: int = 0
    """Connections refused (allowlist, or every slot busy)."""
    evicted: int = 0
    """Idle connections closed to make room for a new one."""
    idle_closed: int = 0
    read_timeouts: int = 0
    """Frames not completed within ``read_timeout_s`` (answered ``timeout``, connection closed)."""
    write_timeouts: int = 0
    """Connections closed because their peer did not take its replies."""
    slowed: int = 0
    """Times a peer was paused for sending too many refused frames."""
    frames_in_flight: int = 0
    bytes_in_flight: int = 0
    peak_frames_in_flight: int = 0
    peak_bytes_in_flight: int = 0


class _Conn:
    """One connection's state, as the limits see it."""

    __slots__ = (
        "accepted",
        "bytes",
        "device",
        "frames",
        "last_activity",
        "peer",
        "reader",
        "stop_reading",
        "task",
        "wake",
        "writer",
    )

    def __init__(
        self,
        peer: str,
        device: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        task: asyncio.Task[Any],
    ) -> None:
        self.peer = peer
        self.device = device
        self.reader = reader
        self.writer = writer
        self.task = task
        self.last_activity = asyncio.get_running_loop().time()
        """When the peer last sent bytes (the longest-idle connection is evicted first)."""
        self.frames = 0
        self.bytes = 0
        self.accepted = 0
        """Scans of this connection committed: a scanner that has sent good reads is evicted
        only after connections that never did."""
        self.stop_reading = False
        """Evicted or broken: read nothing more, do not frame what is left."""
        self.wake = asyncio.Event()
        """Set to end a pause early (stop, eviction)."""


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
        self.ack = ack
        self.terminator = terminator
        self.protocol = protocol
        self.limits = limits = limits if limits is not None else TcpLimits()
        self.bound: tuple[str, int] | None = None
        """The real address once listening (useful with port 0)."""
        self.listening = asyncio.Event()
        self.stats = TcpStats()
        self._conns: dict[asyncio.Task[Any], _Conn] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._peers = PeerBuckets(limits.refused_per_s, limits.refused_burst)
        self._refused_log = LogThrottle(log)
        self._slowed_log = LogThrottle(log)
        self._timeout_log = LogThrottle(log)
        self._frame_log = LogThrottle(log)
        self._evicted_log = LogThrottle(log, level=logging.INFO)

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
        server = await asyncio.start_server(
            lambda r, w: self._serve(intake, r, w),
            self.host,
            self.port,
            reuse_address=True,
            limit=READ_SIZE,
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
            self._flush_logs(force=True)

    async def _drain_connections(self) -> None:
        for conn in self._conns.values():
            # Stop the socket first: data arriving after EOF would break the reader.
            transport = conn.writer.transport
            if isinstance(transport, asyncio.ReadTransport) and not transport.is_closing():
                transport.pause_reading()
            conn.reader.feed_eof()  # the handler stops reading and answers what it has
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
        conn = self._conns[task] = _Conn(host, device, reader, writer, task)
        self.stats.connections += 1
        self._tune_socket(writer)
        replies: asyncio.Queue[_Reply | None] = asyncio.Queue()  # bounded by the in-flight limits
        answer = asyncio.create_task(self._answer(conn, replies))
        try:
            await self._read(intake, conn, replies)
        finally:
            replies.put_nowait(None)
            with contextlib.suppress(Exception):
                await answer
            self._conns.pop(task, None)
            self._flush_logs()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _flush_logs(self, *, force: bool = False) -> None:
        for throttle in (
            self._refused_log,
            self._slowed_log,
            self._timeout_log,
            self._frame_log,
            self._evicted_log,
        ):
            throttle.flush(force=force)

    def _refuse(self, writer: asyncio.StreamWriter, message: str) -> None:
        self.stats.refused += 1
        self._refused_log.note(message)
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
        victim.stop_reading = True
        del self._conns[victim.task]
        victim.writer.transport.abort()
        victim.wake.set()
        self.stats.evicted += 1
        idle_s = asyncio.get_running_loop().time() - victim.last_activity
        self._evicted_log.note(
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

    # -- reading -----------------------------------------------------------------

    async def _read(
        self,
        intake: Intake,
        conn: _Conn,
        replies: asyncio.Queue[_Reply | None],
    ) -> None:
        """Read, frame and submit until EOF, an error, a timeout or eviction."""
        lim = self.limits
        loop = asyncio.get_running_loop()
        framer = LineFramer(self.terminator, max_frame=lim.max_frame, keep_empty=True)
        waited = 0.0
        """Seconds spent waiting on the peer since the frame in progress began."""
        while not conn.stop_reading:
            partial = framer.in_frame
            limit = lim.read_timeout_s - waited if partial else lim.idle_timeout_s
            has_limit = lim.read_timeout_s > 0 if partial else lim.idle_timeout_s > 0
            started = loop.time()
            try:
                async with asyncio.timeout(max(limit, 0.0) if has_limit else None):
                    data = await conn.reader.read(READ_SIZE)
            except TimeoutError:
                self._timed_out(conn, framer, replies)
                return
            except (ConnectionError, OSError):
                break
            if not data:
                break
            now = loop.time()
            conn.last_activity = now
            waited += now - started
            await self._slow_down(conn)  # before anything of this read is parsed
            if conn.stop_reading:
                return
            events = framer.feed(data)
            if framer.in_frame and (events or not partial):
                waited = 0.0  # a new frame began in this read
            await self._submit(intake, conn, events, replies)
        if not conn.stop_reading:
            await self._submit(intake, conn, framer.flush(), replies)

    def _timed_out(
        self, conn: _Conn, framer: LineFramer, replies: asyncio.Queue[_Reply | None]
    ) -> None:
        head = framer.abandon()
        if head is None:
            self.stats.idle_closed += 1
            log.info(
                "%s: closing %s, idle for %.0f s (idle_timeout_s)",
                self.name,
                conn.device,
                self.limits.idle_timeout_s,
            )
            return
        self.stats.read_timeouts += 1
        reason = f"frame not completed within {self.limits.read_timeout_s:g} s"
        self._timeout_log.note(f"{self.name}: {reason} by {conn.device}; closing it")
        self._queue_own(conn, replies, head, proto.TIMEOUT, reason)

    async def _slow_down(self, conn: _Conn) -> None:
        """Pause reading from a peer that sent more refused frames than its rate allows."""
        loop = asyncio.get_running_loop()
        bucket = self._peers.get(conn.peer, loop.time())
        wait = bucket.wait_s(loop.time())
        if wait <= 0:
            return
        self.stats.slowed += 1
        self._slowed_log.note(
            f"{self.name}: slowing down {conn.peer} for {wait:.1f} s: more than "
            f"{self.limits.refused_burst} refused frames at over {self.limits.refused_per_s:g}/s"
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await conn.wake.wait()

    async def _submit(
        self,
        intake: Intake,
        conn: _Conn,
        events: list[FrameEvent],
        replies: asyncio.Queue[_Reply | None],
    ) -> None:
        """Submit a read's frames in order, in batches that fit the in-flight limits."""
        scans: list[RawScan] = []
        cost = 0
        now = utc_now()  # frames of one read arrived together: one capture time
        for event in events:
            size = (len(event.data) if isinstance(event, Frame) else len(event.head)) + 1
            if not self._room(conn, size):
                if scans:
                    self._put_batch(intake, scans, cost, replies)
                    scans, cost = [], 0
                await self._wait_room(conn, size)
            self._take(conn, size)
            if isinstance(event, Frame) and event.data and proto.hello_version(event.data) is None:
                # The device is the peer's address, not its connection: a scanner's scans
                # (and refusals, aggregated per device) stay one device across reconnects.
                scans.append(RawScan(event.data, self.name, conn.peer, now))  # positional
                cost += size
                continue
            if scans:
                self._put_batch(intake, scans, cost, replies)
                scans, cost = [], 0
            replies.put_nowait(self._own_reply(conn, event, size))
        if scans:
            self._put_batch(intake, scans, cost, replies)

    def _put_batch(
        self,
        intake: Intake,
        scans: list[RawScan],
        cost: int,
        replies: asyncio.Queue[_Reply | None],
    ) -> None:
        task = asyncio.create_task(intake.submit_many(scans))
        replies.put_nowait(_Batch(task, [s.data for s in scans], cost))

    def _own_reply(self, conn: _Conn, event: FrameEvent, cost: int) -> _Own:
        """The reply to a frame the source answers itself: a HELLO, an empty or over-long one."""
        if isinstance(event, Frame) and event.data:
            return _Own(self._hello(), refused=False, cost=cost)
        if isinstance(event, Frame):
            kind, reason, head = proto.EMPTY, "empty frame", b""
        else:
            self._frame_log.note(f"{self.name}: {event.reason} from {conn.device}")
            kind, reason, head = proto.TOO_LONG, event.reason, event.head
        return _Own(self._refusal(head, kind, reason), refused=True, cost=cost)

    def _queue_own(
        self,
        conn: _Conn,
        replies: asyncio.Queue[_Reply | None],
        head: bytes,
        kind: str,
        reason: str,
    ) -> None:
        cost = len(head) + 1
        self._take(conn, cost)  # the last frame of the connection: always let through
        replies.put_nowait(_Own(self._refusal(head, kind, reason), refused=True, cost=cost))

    def _refusal(self, head: bytes, kind: str, reason: str) -> bytes:
        if self.protocol == 1:
            return proto.format_legacy(None, reason)
        return proto.format_refusal(head, kind, reason, self.limits.max_frame)

    def _hello(self) -> bytes:
        lim = self.limits
        return proto.format_hello(
            {
                "max_frame": lim.max_frame,
                "terminator": self.terminator,
                "max_in_flight": lim.max_in_flight,
                "max_in_flight_bytes": lim.max_in_flight_bytes,
                "idle_timeout_s": f"{lim.idle_timeout_s:g}",
                "read_timeout_s": f"{lim.read_timeout_s:g}",
            }
        )

    # -- in-flight budget --------------------------------------------------------

    def _room(self, conn: _Conn, size: int) -> bool:
        """True if a frame of ``size`` bytes may be taken in (one is always let through)."""
        lim, st = self.limits, self.stats
        return (
            conn.frames == 0
            or (conn.frames < lim.max_in_flight and conn.bytes + size <= lim.max_in_flight_bytes)
        ) and (
            st.frames_in_flight == 0
            or (
                st.frames_in_flight < lim.total_in_flight
                and st.bytes_in_flight + size <= lim.total_in_flight_bytes
            )
        )

    async def _wait_room(self, conn: _Conn, size: int) -> None:
        loop = asyncio.get_running_loop()
        while not self._room(conn, size):
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()

    def _take(self, conn: _Conn, size: int) -> None:
        st = self.stats
        conn.frames += 1
        conn.bytes += size
        st.frames_in_flight += 1
        st.bytes_in_flight += size
        st.peak_frames_in_flight = max(st.peak_frames_in_flight, st.frames_in_flight)
        st.peak_bytes_in_flight = max(st.peak_bytes_in_flight, st.bytes_in_flight)

    def _release(self, conn: _Conn, frames: int, size: int) -> None:
        conn.frames -= frames
        conn.bytes -= size
        self.stats.frames_in_flight -= frames
        self.stats.bytes_in_flight -= size
        # Wake every waiter in the order it came; each checks its own room again.
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- answering ---------------------------------------------------------------

    def _format(self, frames: list[bytes], outcomes: list[ScanOutcome]) -> bytes:
        if self.protocol == 1:
            return b"".join(proto.format_legacy(o) for o in outcomes)
        return b"".join(
            proto.format_outcome(f, o, self.limits.max_frame)
            for f, o in zip(frames, outcomes, strict=True)
        )

    async def _outcomes(self, batch: _Batch) -> list[ScanOutcome]:
        """The batch's outcomes; an intake fault becomes an ``error`` reply, never a hang."""
        try:
            return await batch.task
        except Exception:
            log.exception("%s: intake failed on %d frames", self.name, len(batch.frames))
            return [ScanOutcome(Verdict.ERROR, "", "internal error")] * len(batch.frames)

    async def _answer(self, conn: _Conn, replies: asyncio.Queue[_Reply | None]) -> None:
        """Await outcomes in arrival order, write the replies, then free their budget."""
        loop = asyncio.get_running_loop()
        broken = False
        while True:
            item = await replies.get()
            if item is None:
                return
            if isinstance(item, _Own):
                data, refused, frames = item.line, int(item.refused), 1
            else:
                outcomes = await self._outcomes(item)
                data = self._format(item.frames, outcomes)
                accepted = sum(o.verdict is Verdict.ACCEPTED for o in outcomes)
                refused = sum(o.verdict not in _NOT_REFUSALS for o in outcomes)
                conn.accepted += accepted
                frames = len(outcomes)
            if refused:
                self._peers.get(conn.peer, loop.time()).take(refused, loop.time())
            if self.ack and not broken:
                broken = not await self._write(conn, data)
            self._release(conn, frames, item.cost)

    async def _write(self, conn: _Conn, data: bytes) -> bool:
        """Write replies; False (and the connection closed) if the peer does not take them."""
        timeout = self.limits.write_timeout_s
        try:
            conn.writer.write(data)
            async with asyncio.timeout(timeout if timeout > 0 else None):
                await conn.writer.drain()
        except TimeoutError:
            self.stats.write_timeouts += 1
            self._timeout_log.note(
                f"{self.name}: {conn.device} took no replies for {timeout:g} s "
                f"(write_timeout_s); closing it"
            )
        except (ConnectionError, OSError):
            pass
        else:
            return True
        conn.stop_reading = True
        conn.writer.transport.abort()
        conn.wake.set()
        return False


def build(name: str, options: dict[str, Any]) -> TcpSource:
    """Factory used by :mod:`drivers.registry`."""
    host, port = parse_host_port(options["listen"], "listen", default_host=LISTEN_ANY)
    return TcpSource(
        source_name("tcp", name, options),
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
