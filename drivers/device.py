"""What every hardware source shares: one reader thread, reconnects, status, feedback order.

A hardware source (:mod:`drivers.serialport`, :mod:`drivers.hidraw`,
:mod:`drivers.wedge`) is a :class:`DeviceSource`.  Its ``run`` loop opens the
device, reads it until the device goes away, marks it offline and opens it
again with a capped exponential backoff when it comes back (hot-plug by
polling: an absent ``/dev`` node simply fails to open until udev recreates
it; where pyudev is installed, a matching udev event ends the wait at once,
see :mod:`drivers.hotplug`).  Everything device-specific is three methods: ``_open`` (blocking, run in
a worker thread), ``_handle`` (one chunk read, on the event loop) and
``_feedback`` (one committed outcome, on the event loop).

Opening and writing block, so they run on two lanes of the device's own
(:class:`scanner_agent.kernel.Lane`), never on asyncio's shared default pool: a
storm of other slow work cannot delay a beep, and a write stuck on one scanner
holds up only that scanner's later writes (at most :data:`MAX_WRITES_PENDING`,
then they are dropped and logged), never another device or a reconnect.

Reading follows pyserial's ``ReaderThread``: **one thread per device** does
the blocking reads, with the read and the hand-over to the event loop in
**separate try blocks**, both ending in one ``connection_lost(exc)``.  A read
failure arrives as a :class:`DeviceError` (the device is offline and is
reopened); a failure while handling data on the loop is logged with its
traceback, counted in ``errors`` and the connection keeps going, so a parser
bug is never mistaken for an unplugged scanner and never loses the next scan.

Scans are submitted as soon as they are framed (they join the intake's group
commit) and their outcomes are awaited in arrival order, so feedback (a beep,
an LED) goes out in scan order, only after the commit, and only to the
connection that read the scan.

Status attributes (read them directly or through :meth:`DeviceSource.status`):

``connected`` (bool)
    True while the device is open and being read.
``device`` (str)
    The path or URL read, e.g. ``/dev/ttyACM0`` or ``/dev/hidraw3``.
``model`` (str | None)
    Vendor and model from the firmware profile.
``last_scan_at`` (float | None)
    ``time.time()`` of the last frame read.
``errors`` (int)
    Disconnects, read errors, malformed input and handler faults.
``last_outcome`` (ScanOutcome | None)
    The last committed outcome: where a device has no way back (a keyboard
    wedge), the terminal bell or the TUI shows it from here.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from drivers import hotplug
from drivers.reader import ReaderThread
from scanner_agent.kernel import (
    DeviceError,
    DeviceStatus,
    Intake,
    Lane,
    LaneBusy,
    RawScan,
    ScanOutcome,
    backoff_delay,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)

MAX_IN_FLIGHT = 256
"""Scans submitted but not yet answered before a source stops reading."""
FINISH_TIMEOUT_S = 5.0
"""Longest a stopping source waits for its scans in flight to commit."""
STABLE_S = 1.0
"""A link that lasted this long resets the reconnect backoff."""
MAX_CHUNKS = 1024
"""Chunks a reader thread may hand to the event loop before it waits."""
MAX_WRITES_PENDING = 8
"""Writes to one device running or waiting; more are dropped (the device is stuck)."""


class Backoff:
    """Capped exponential delays between reconnect attempts: the kernel's one rule
    (:func:`~scanner_agent.kernel.backoff_delay`), without jitter (one local device)."""

    def __init__(self, initial: float = 0.05, maximum: float = 5.0) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(
                f"Failed to use backoff {initial}..{maximum}: expected 0 < initial <= maximum"
            )
        self.initial = initial
        self.maximum = maximum
        self._attempt = 0

    def next(self) -> float:
        """The delay before the next attempt (doubles each call, up to ``maximum``)."""
        delay = backoff_delay(self._attempt, self.initial, self.maximum)
        self._attempt += 1
        return delay

    def reset(self) -> None:
        """Start again from ``initial`` (after a successful open)."""
        self._attempt = 0


@dataclass(frozen=True, slots=True)
class _Lost:
    error: BaseException | None


class _LoopBridge(Generic[T]):
    """Hands a reader thread's data to an asyncio queue, with backpressure."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[T | _Lost]) -> None:
        self._loop = loop
        self._queue = queue
        self.slots = threading.BoundedSemaphore(MAX_CHUNKS)
        self.alive = True

    def data_received(self, data: T) -> None:
        while not self.slots.acquire(timeout=0.2):
            if not self.alive:
                return
        self._loop.call_soon_threadsafe(self._queue.put_nowait, data)

    def connection_lost(self, exc: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self._loop.call_soon_threadsafe(self._queue.put_nowait, _Lost(exc))


class Link(Protocol[T_co]):
    """An open device as the base class sees it."""

    def read(self) -> T_co:
        """Blocking read (run in the reader thread); empty on time-out or cancel."""
        ...

    def cancel(self) -> None:
        """Wake a blocked :meth:`read`."""
        ...

    def close(self) -> None:
        """Release the device (after the reader thread has stopped)."""
        ...


@dataclass(slots=True)
class _InFlight:
    task: asyncio.Task[ScanOutcome]
    scan: RawScan
    link: int


def _close_result(future: asyncio.Future[Link[T]]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()


# -- the base class ------------------------------------------------------------


class DeviceSource(abc.ABC, Generic[T]):
    """A :class:`scanner_agent.kernel.Source` reading one hardware device (see the module docstring)."""

    def __init__(
        self,
        name: str,
        device: str,
        *,
        model: str | None = None,
        reconnect_initial_s: float = 0.05,
        reconnect_max_s: float = 5.0,
    ) -> None:
        self.name = name
        self.device = device
        """The path or URL read (updated when a device is found by USB ids)."""
        self.model = model
        """Vendor and model from the profile."""
        self.connected = False
        """True while the device is open and being read."""
        self.last_scan_at: float | None = None
        """``time.time()`` of the last frame read."""
        self.errors = 0
        """Disconnects, read errors, malformed input and handler faults."""
        self.reason: str | None = None
        """Why the device is offline, when it is."""
        self.scans = 0
        """Frames submitted since the source started."""
        self.connects = 0
        """Successful opens (1 + reconnects)."""
        self.last_outcome: ScanOutcome | None = None
        """The last committed outcome (what the operator should hear or see)."""
        self.backoff = Backoff(reconnect_initial_s, reconnect_max_s)
        self.hotplug: hotplug.Hotplug | None = None
        """Where udev events wake this source early (set at the first wait, or by tests)."""
        self.use_udev = True
        """Look for the loop's udev monitor at the first wait (False: polling only)."""
        self.hotplug_wakes = 0
        """Reopen attempts started early by a udev event."""
        self._link_id = 0
        self._link: Link[T] | None = None
        self._intake: Intake | None = None
        self._in_flight: asyncio.Queue[_InFlight | None] | None = None
        self._submitting: set[asyncio.Task[ScanOutcome]] = set()
        self._opens: Lane | None = None
        self._writes: Lane | None = None

    # -- for subclasses ----------------------------------------------------------

    def _prepare(self) -> None:
        """Check once, before the first open, what can never work (raise to stop)."""

    @abc.abstractmethod
    def _open(self) -> Link[T]:
        """Open the device (blocking; runs in a worker thread).

        Raises:
            DeviceUnavailable: the device is absent or busy (retried with backoff).
        """

    async def _connected(self, link: Link[T]) -> None:
        """Called on the loop once the reader runs (send a wake-up, query the model)."""

    @abc.abstractmethod
    async def _handle(self, link: Link[T], data: T) -> None:
        """Process one read on the event loop: frame it and :meth:`_submit` the frames."""

    async def _feedback(self, link: Link[T], outcome: ScanOutcome) -> None:
        """Tell the device the outcome of one of its scans (default: nothing)."""

    def _disconnected(self, link: Link[T]) -> None:
        """Called on the loop when a link ends (cancel timers)."""

    async def _submit(self, data: bytes) -> None:
        """Submit one frame; its outcome is awaited (and fed back) in order."""
        assert self._intake is not None
        assert self._in_flight is not None
        scan = RawScan(data, source=self.name, device=self.device)
        self.scans += 1
        self.last_scan_at = time.time()
        task = asyncio.create_task(self._intake.submit(scan))
        self._submitting.add(task)
        task.add_done_callback(self._submitting.discard)
        await self._in_flight.put(_InFlight(task, scan, self._link_id))

    async def _write_link(self, write: Callable[[bytes], object], data: bytes) -> None:
        """``write(data)`` on this device's write lane, in order, off the event loop.

        Raises:
            DeviceError: the source is not running, or :data:`MAX_WRITES_PENDING`
                writes are held already (a stuck device): this one is dropped.
        """
        if self._writes is None:
            raise DeviceError(f"Failed to write to {self.device}: not open", device=self.device)
        try:
            await self._writes.run(write, data)
        except LaneBusy as exc:
            raise DeviceError(
                f"Failed to write to {self.device}: {exc}", device=self.device
            ) from exc

    def _error(self, message: str, *args: object) -> None:
        """Log a device-side problem (malformed input) and count it."""
        self.errors += 1
        log.warning("%s: " + message, self.name, *args)

    # -- status --------------------------------------------------------------------

    def status(self) -> DeviceStatus:
        """A snapshot of the status attributes."""
        return DeviceStatus(
            source=self.name,
            connected=self.connected,
            device=self.device,
            model=self.model,
            last_scan_at=self.last_scan_at,
            errors=self.errors,
            reason=self.reason,
        )

    # -- the loop ------------------------------------------------------------------

    async def run(self, intake: Intake) -> None:
        """Open, read, reconnect, until cancelled."""
        self._prepare()
        self._intake = intake
        self._in_flight = asyncio.Queue(MAX_IN_FLIGHT)
        self._opens = Lane(f"open {self.name}", workers=1, max_pending=2)
        self._writes = Lane(f"write {self.name}", workers=1, max_pending=MAX_WRITES_PENDING)
        answers = asyncio.create_task(self._answer(), name=f"feedback {self.name}")
        self.backoff.reset()
        try:
            while True:
                try:
                    link = await self._open_in_thread()
                except DeviceError as exc:
                    self._offline(str(exc), waiting=True)
                    await self._pause(self.backoff.next())
                    continue
                opened_at = time.monotonic()
                reason = await self._serve(link)
                self._offline(reason)
                if time.monotonic() - opened_at >= STABLE_S:
                    self.backoff.reset()  # a flapping device keeps backing off
                await self._pause(self.backoff.next())
        finally:
            self.connected = False
            await self._finish(answers)
            for lane in (self._opens, self._writes):
                lane.shutdown()
            self._opens = self._writes = None

    def _interest(self) -> hotplug.Interest | None:
        """The udev events that may bring this device back (``None``: poll only)."""
        return None

    async def _pause(self, delay: float) -> None:
        """Wait ``delay`` s before the next open, cut short by a matching udev event.

        The delay still bounds the wait, so polling remains the fallback when
        pyudev is missing, netlink is refused or an event does not match.
        """
        interest = self._interest()
        if interest is None:
            await asyncio.sleep(delay)
            return
        if self.hotplug is None and self.use_udev:
            self.hotplug = hotplug.for_loop(asyncio.get_running_loop())
            self.use_udev = False  # looked up once
        if self.hotplug is None:
            await asyncio.sleep(delay)
            return
        if await self.hotplug.wait(interest, delay):
            self.hotplug_wakes += 1
            log.debug("%s: udev announced a matching device: opening now", self.name)

    async def _open_in_thread(self) -> Link[T]:
        """``_open`` on the open lane; a link opened after we were cancelled is closed."""
        assert self._opens is not None
        future = asyncio.wrap_future(self._opens.submit(self._open))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_close_result)
            raise

    def _offline(self, reason: str, *, waiting: bool = False) -> None:
        first = self.reason is None or not waiting
        if first:
            self.errors += 1
            log.warning("%s: offline: %s", self.name, reason)
        else:
            log.debug("%s: still offline: %s", self.name, reason)
        self.connected = False
        self.reason = reason

    async def _serve(self, link: Link[T]) -> str:
        """Read one open link until it is lost; return why."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[T | _Lost] = asyncio.Queue()
        bridge: _LoopBridge[T] = _LoopBridge(loop, queue)
        reader = ReaderThread(link.read, bridge, device=self.device, cancel=link.cancel)
        self._link_id += 1
        self._link = link
        self.connects += 1
        self.connected = True
        self.reason = None
        log.info("%s: connected to %s", self.name, self.device)
        reader.start()
        try:
            await self._connected(link)
            while True:
                item = await queue.get()
                if isinstance(item, _Lost):
                    return self._lost_reason(item.error)
                bridge.slots.release()
                try:
                    await self._handle(link, item)
                except DeviceError as exc:
                    return str(exc)  # a write while handling (an SSI ACK) failed: the link is gone
                except Exception:
                    # A handler fault is a bug, not an unplugged device: keep reading.
                    self.errors += 1
                    log.exception("%s: failed to handle data from %s", self.name, self.device)
        finally:
            bridge.alive = False
            self._link = None
            self._disconnected(link)
            reader.stop()
            link.close()

    def _lost_reason(self, error: BaseException | None) -> str:
        if error is None:
            return "reader stopped"
        if isinstance(error, DeviceError):
            return str(error)
        log.error("%s: reader thread failed", self.name, exc_info=error)
        return f"reader thread failed: {error!r}"

    async def _answer(self) -> None:
        """Await outcomes in arrival order; feed each back on the link that read it."""
        assert self._in_flight is not None
        while True:
            item = await self._in_flight.get()
            if item is None:
                return
            try:
                outcome = await item.task
            except Exception:
                self.errors += 1
                log.exception("%s: failed to submit a scan", self.name)
                continue
            self.last_outcome = outcome
            log.debug("%s: %s %s", self.name, outcome.verdict.value, outcome.code)
            link = self._link
            if link is None or item.link != self._link_id:
                continue  # the device that read it is gone: nobody to tell
            try:
                await self._feedback(link, outcome)
            except DeviceError as exc:
                log.debug("%s: feedback not sent: %s", self.name, exc)
            except Exception:
                self.errors += 1
                log.exception("%s: failed to send feedback", self.name)

    async def _finish(self, answers: asyncio.Task[None]) -> None:
        """Let scans already read reach their commit, then stop the feedback task.

        The daemon cancels its sources before it drains the committer, so
        waiting here (briefly) gets every scan read before the stop committed;
        nothing is fed back any more, the device is closed.
        """
        if self._submitting:
            await asyncio.wait(set(self._submitting), timeout=FINISH_TIMEOUT_S)
        answers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answers
