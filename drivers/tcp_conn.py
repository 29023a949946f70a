"""One TCP connection of a :class:`drivers.tcp.TcpSource`: its reading and its replies.

A :class:`Connection` reads, frames and submits what its peer sends, then answers every
frame exactly once and in order (docs/tcp-protocol.md).  What all connections of a source
share, and what bounds them together, is a :class:`Shared`: the source's settings and
reply grammar, its counters (:class:`TcpStats`), the in-flight budget (:class:`Budget`),
the per-peer rates of refused frames and the throttled log lines.  The source itself
(accepting, the allowlist, eviction, the drain at stop) stays in :mod:`drivers.tcp`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from drivers import tcp_protocol as proto
from drivers.framing import Frame, FrameEvent, LineFramer
from drivers.tcp_limits import LogThrottle, PeerBuckets, TcpLimits
from drivers.tcp_stream import LINGER_S, StoppableReader
from scanner_agent.kernel import Intake, RawScan, ScanOutcome, Verdict, utc_now

log = logging.getLogger("drivers.tcp")
"""The source's logger: its connections' lines log under the source's name, as they did
when both were one module (operators filter on it)."""

READ_SIZE = 16 * 1024
"""Bytes asked of a connection per read.  A read's frames are all submitted before the
next read, so one read holds at most READ_SIZE / 2 frames (one-byte lines), and the
stream reader buffers at most twice this much per connection."""

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


class Budget:
    """Frames and bytes read but not yet answered, per connection and in total.

    Past a limit a connection stops reading (TCP then pushes back on its sender); one
    frame is always let through, so a connection never waits on itself.
    """

    def __init__(self, limits: TcpLimits, stats: TcpStats) -> None:
        self.limits = limits
        self.stats = stats
        self._waiters: list[asyncio.Future[None]] = []

    def room(self, conn: Connection, size: int) -> bool:
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

    async def wait_room(self, conn: Connection, size: int) -> None:
        """Wait until a frame of ``size`` bytes fits (woken at every release)."""
        loop = asyncio.get_running_loop()
        while not self.room(conn, size):
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()

    def take(self, conn: Connection, size: int) -> None:
        """Count one frame of ``size`` bytes in flight."""
        st = self.stats
        conn.frames += 1
        conn.bytes += size
        st.frames_in_flight += 1
        st.bytes_in_flight += size
        st.peak_frames_in_flight = max(st.peak_frames_in_flight, st.frames_in_flight)
        st.peak_bytes_in_flight = max(st.peak_bytes_in_flight, st.bytes_in_flight)

    def release(self, conn: Connection, frames: int, size: int) -> None:
        """Free answered frames and wake every waiter, in the order it came."""
        conn.frames -= frames
        conn.bytes -= size
        self.stats.frames_in_flight -= frames
        self.stats.bytes_in_flight -= size
        # Each waiter checks its own room again.
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


@dataclass(eq=False)
class Shared:
    """What the connections of one source share: settings, counters, budget, peer rates,
    throttled log lines; and the source's reply grammar (protocol 1 or 2)."""

    name: str
    ack: bool
    terminator: str
    protocol: int
    limits: TcpLimits
    stats: TcpStats = field(default_factory=TcpStats)
    budget: Budget = field(init=False)
    peers: PeerBuckets = field(init=False)
    refused_log: LogThrottle = field(default_factory=lambda: LogThrottle(log))
    slowed_log: LogThrottle = field(default_factory=lambda: LogThrottle(log))
    timeout_log: LogThrottle = field(default_factory=lambda: LogThrottle(log))
    frame_log: LogThrottle = field(default_factory=lambda: LogThrottle(log))
    evicted_log: LogThrottle = field(default_factory=lambda: LogThrottle(log, level=logging.INFO))

    def __post_init__(self) -> None:
        self.budget = Budget(self.limits, self.stats)
        self.peers = PeerBuckets(self.limits.refused_per_s, self.limits.refused_burst)

    def flush_logs(self, *, force: bool = False) -> None:
        """Log the summaries the throttles hold back (all of them with ``force``)."""
        for throttle in (
            self.refused_log,
            self.slowed_log,
            self.timeout_log,
            self.frame_log,
            self.evicted_log,
        ):
            throttle.flush(force=force)

    def refusal(self, head: bytes, kind: str, reason: str) -> bytes:
        """The reply to a frame the source refuses itself."""
        if self.protocol == 1:
            return proto.format_legacy(None, reason)
        return proto.format_refusal(head, kind, reason, self.limits.max_frame)

    def hello(self) -> bytes:
        """The reply to a HELLO: the protocol version and the limits a peer must keep."""
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

    def format(self, frames: list[bytes], outcomes: list[ScanOutcome]) -> bytes:
        """The reply lines of submitted frames, one per frame, in order."""
        if self.protocol == 1:
            return b"".join(proto.format_legacy(o) for o in outcomes)
        return b"".join(
            proto.format_outcome(f, o, self.limits.max_frame)
            for f, o in zip(frames, outcomes, strict=True)
        )


class Connection:
    """One connection: reads, frames and submits its frames, and answers each in order."""

    __slots__ = (
        "accepted",
        "bytes",
        "device",
        "frames",
        "last_activity",
        "peer",
        "reader",
        "shared",
        "stop_reading",
        "task",
        "wake",
        "writer",
    )

    def __init__(
        self,
        shared: Shared,
        peer: str,
        device: str,
        reader: StoppableReader,
        writer: asyncio.StreamWriter,
        task: asyncio.Task[Any],
    ) -> None:
        self.shared = shared
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

    async def serve(self, intake: Intake) -> None:
        """Read and answer until the connection ends; every reply queued is still written."""
        replies: asyncio.Queue[_Reply | None] = asyncio.Queue()  # bounded by the in-flight limits
        answer = asyncio.create_task(self._answer(replies))
        try:
            await self._read(intake, replies)
        finally:
            replies.put_nowait(None)
            with contextlib.suppress(Exception):
                await answer

    # -- reading -----------------------------------------------------------------

    async def _read(self, intake: Intake, replies: asyncio.Queue[_Reply | None]) -> None:
        """Read, frame and submit until EOF, an error, a timeout or eviction."""
        lim = self.shared.limits
        loop = asyncio.get_running_loop()
        framer = LineFramer(self.shared.terminator, max_frame=lim.max_frame, keep_empty=True)
        waited = 0.0
        """Seconds spent waiting on the peer since the frame in progress began."""
        while not self.stop_reading:
            partial = framer.in_frame
            limit = lim.read_timeout_s - waited if partial else lim.idle_timeout_s
            has_limit = lim.read_timeout_s > 0 if partial else lim.idle_timeout_s > 0
            started = loop.time()
            try:
                async with asyncio.timeout(max(limit, 0.0) if has_limit else None):
                    data = await self.reader.read(READ_SIZE)
            except TimeoutError:
                self._timed_out(framer, replies)
                return
            except (ConnectionError, OSError):
                break
            if not data:
                break
            now = loop.time()
            self.last_activity = now
            waited += now - started
            await self._slow_down()  # before anything of this read is parsed
            if self.stop_reading:
                return
            events = framer.feed(data)
            if framer.in_frame and (events or not partial):
                waited = 0.0  # a new frame began in this read
            await self._submit(intake, events, replies)
        if not self.stop_reading and not self.reader.stopped:
            # The peer closed: its last frame may lack the terminator.  A frame cut by the
            # agent's stop is no frame: unanswered, the scanner sends it again.
            await self._submit(intake, framer.flush(), replies)

    def _timed_out(self, framer: LineFramer, replies: asyncio.Queue[_Reply | None]) -> None:
        shared = self.shared
        head = framer.abandon()
        if head is None:
            shared.stats.idle_closed += 1
            log.info(
                "%s: closing %s, idle for %.0f s (idle_timeout_s)",
                shared.name,
                self.device,
                shared.limits.idle_timeout_s,
            )
            return
        shared.stats.read_timeouts += 1
        reason = f"frame not completed within {shared.limits.read_timeout_s:g} s"
        shared.timeout_log.note(f"{shared.name}: {reason} by {self.device}; closing it")
        cost = len(head) + 1
        shared.budget.take(self, cost)  # the last frame of the connection: always let through
        line = shared.refusal(head, proto.TIMEOUT, reason)
        replies.put_nowait(_Own(line, refused=True, cost=cost))

    async def _slow_down(self) -> None:
        """Pause reading from a peer that sent more refused frames than its rate allows."""
        shared = self.shared
        loop = asyncio.get_running_loop()
        bucket = shared.peers.get(self.peer, loop.time())
        wait = bucket.wait_s(loop.time())
        if wait <= 0:
            return
        shared.stats.slowed += 1
        shared.slowed_log.note(
            f"{shared.name}: slowing down {self.peer} for {wait:.1f} s: more than "
            f"{shared.limits.refused_burst} refused frames at over "
            f"{shared.limits.refused_per_s:g}/s"
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self.wake.wait()

    async def _submit(
        self, intake: Intake, events: list[FrameEvent], replies: asyncio.Queue[_Reply | None]
    ) -> None:
        """Submit a read's frames in order, in batches that fit the in-flight limits."""
        budget = self.shared.budget
        scans: list[RawScan] = []
        cost = 0
        now = utc_now()  # frames of one read arrived together: one capture time
        for event in events:
            size = (len(event.data) if isinstance(event, Frame) else len(event.head)) + 1
            if not budget.room(self, size):
                if scans:
                    _put_batch(intake, scans, cost, replies)
                    scans, cost = [], 0
                await budget.wait_room(self, size)
            budget.take(self, size)
            if isinstance(event, Frame) and event.data and proto.hello_version(event.data) is None:
                # The device is the peer's address, not its connection: a scanner's scans
                # (and refusals, aggregated per device) stay one device across reconnects.
                scans.append(RawScan(event.data, self.shared.name, self.peer, now))  # positional
                cost += size
                continue
            if scans:
                _put_batch(intake, scans, cost, replies)
                scans, cost = [], 0
            replies.put_nowait(self._own_reply(event, size))
        if scans:
            _put_batch(intake, scans, cost, replies)

    def _own_reply(self, event: FrameEvent, cost: int) -> _Own:
        """The reply to a frame the source answers itself: a HELLO, an empty or over-long one."""
        shared = self.shared
        if isinstance(event, Frame) and event.data:
            return _Own(shared.hello(), refused=False, cost=cost)
        if isinstance(event, Frame):
            kind, reason, head = proto.EMPTY, "empty frame", b""
        else:
            shared.frame_log.note(f"{shared.name}: {event.reason} from {self.device}")
            kind, reason, head = proto.TOO_LONG, event.reason, event.head
        return _Own(shared.refusal(head, kind, reason), refused=True, cost=cost)

    # -- answering ---------------------------------------------------------------

    async def _outcomes(self, batch: _Batch) -> list[ScanOutcome]:
        """The batch's outcomes; an intake fault becomes an ``error`` reply, never a hang."""
        try:
            return await batch.task
        except Exception:
            log.exception("%s: intake failed on %d frames", self.shared.name, len(batch.frames))
            return [ScanOutcome(Verdict.ERROR, "", "internal error")] * len(batch.frames)

    async def _answer(self, replies: asyncio.Queue[_Reply | None]) -> None:
        """Await outcomes in arrival order, write the replies, then free their budget."""
        shared = self.shared
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
                data = shared.format(item.frames, outcomes)
                accepted = sum(o.verdict is Verdict.ACCEPTED for o in outcomes)
                refused = sum(o.verdict not in _NOT_REFUSALS for o in outcomes)
                self.accepted += accepted
                frames = len(outcomes)
            if refused:
                shared.peers.get(self.peer, loop.time()).take(refused, loop.time())
            if shared.ack and not broken:
                broken = not await self._write(data)
            shared.budget.release(self, frames, item.cost)

    async def _write(self, data: bytes) -> bool:
        """Write replies; False (and the connection closed) if the peer does not take them."""
        shared = self.shared
        timeout = shared.limits.write_timeout_s
        try:
            self.writer.write(data)
            async with asyncio.timeout(timeout if timeout > 0 else None):
                await self.writer.drain()
        except TimeoutError:
            shared.stats.write_timeouts += 1
            shared.timeout_log.note(
                f"{shared.name}: {self.device} took no replies for {timeout:g} s "
                f"(write_timeout_s); closing it"
            )
        except (ConnectionError, OSError):
            pass
        else:
            return True
        self.close_now()
        return False

    async def linger(self) -> None:
        """The lingering close (:data:`LINGER_S`): FIN after the replies already queued, then
        read and drop until the peer closes.  An evicted or broken connection was dropped."""
        if self.stop_reading:
            return
        self.reader.stop()
        transport = self.writer.transport
        with contextlib.suppress(Exception):  # the peer may be gone: close anyway
            if isinstance(transport, asyncio.ReadTransport) and not transport.is_reading():
                transport.resume_reading()  # paused by the reader's flow control
            if self.writer.can_write_eof():
                self.writer.write_eof()
            async with asyncio.timeout(LINGER_S):
                await self.reader.peer_gone.wait()

    def close_now(self) -> None:
        """Stop reading, drop the socket and end any pause (eviction, a peer taking nothing)."""
        self.stop_reading = True
        self.writer.transport.abort()
        self.wake.set()


def _put_batch(
    intake: Intake, scans: list[RawScan], cost: int, replies: asyncio.Queue[_Reply | None]
) -> None:
    task = asyncio.create_task(intake.submit_many(scans))
    replies.put_nowait(_Batch(task, [s.data for s in scans], cost))
