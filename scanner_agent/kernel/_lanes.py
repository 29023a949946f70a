"""Executors of their own for slow work, each with a bounded queue, and single-flight reads.

asyncio's default thread pool is shared by everything that calls
``asyncio.to_thread``; one kind of slow work queued there without bound (a
metrics scrape storm counting the outbox) delays every other kind (``status``,
a reload, a scanner's beep).  So slow work gets a :class:`Lane`: a few named
threads and a cap on the calls waiting for them.  A call over the cap is
refused at once with :class:`LaneBusy` instead of queueing; the caller says
"busy" and nothing piles up.

:class:`SingleFlight` goes with it for reads that many callers want at once:
concurrent callers share one run, and its result is reused for a short
``max_age_s``, so a storm of requests costs one count, not one each.  A caller
that gives up (a timed-out scrape) leaves the shared run alone.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from scanner_agent.kernel._errors import LaneBusy

__all__ = ["Lane", "SingleFlight"]

_T = TypeVar("_T")


class Lane:
    """``workers`` named threads for one kind of slow work, at most ``max_pending`` calls held.

    A held call is one running or waiting for a thread.  A call whose caller
    was cancelled before it started is dropped from the queue; one already
    running finishes (threads cannot be interrupted) and still counts until it
    does, so a stuck device write keeps its slot and further writes are refused.
    """

    def __init__(self, name: str, *, workers: int = 1, max_pending: int = 8) -> None:
        if workers < 1 or max_pending < workers:
            raise ValueError(f"lane {name}: need 1 <= workers <= max_pending")
        self.name = name
        self.max_pending = max_pending
        self.refused = 0
        """Calls refused because the lane was full, since start."""
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._pending = 0
        self._held: set[Future[Any]] = set()

    @property
    def pending(self) -> int:
        """Calls running or waiting now."""
        return self._pending

    def submit(self, fn: Callable[..., _T], /, *args: Any) -> Future[_T]:
        """Queue ``fn(*args)`` on the lane's threads.

        Raises:
            LaneBusy: ``max_pending`` calls are held already.
        """
        with self._lock:
            if self._pending >= self.max_pending:
                self.refused += 1
                raise LaneBusy(
                    f"Failed to start {getattr(fn, '__name__', 'work')} on {self.name}: "
                    f"{self._pending} calls are waiting already (at most {self.max_pending})"
                )
            self._pending += 1
        try:
            future = self._pool.submit(fn, *args)
        except BaseException:
            self._release(None)
            raise
        with self._lock:
            self._held.add(future)
        future.add_done_callback(self._release)
        return future

    async def run(self, fn: Callable[..., _T], /, *args: Any) -> _T:
        """``fn(*args)`` on the lane, awaited; cancelling the caller drops a call not yet started.

        Raises:
            LaneBusy: the lane is full (the call never ran).
        """
        return await asyncio.wrap_future(self.submit(fn, *args))

    def _release(self, future: Future[Any] | None) -> None:
        with self._lock:
            self._pending -= 1
            self._held.discard(future)

    def shutdown(self) -> None:
        """Stop taking calls and drop the waiting ones; a running call finishes on its own."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """:meth:`shutdown`, then wait (without blocking the loop) for the running calls."""
        self.shutdown()
        with self._lock:
            held = list(self._held)
        await asyncio.gather(*(asyncio.wrap_future(f) for f in held), return_exceptions=True)


class SingleFlight(Generic[_T]):
    """Runs of ``fetch`` shared by every caller that asks while one is due.

    :meth:`get` wants a value read no earlier than ``max_age_s`` before the call:

    * a finished or running read that started recently enough is shared;
    * otherwise the caller waits for the *next* read, which starts when the
      running one ends (so a caller never gets data older than its request),
      and every caller arriving meanwhile shares that same next read.

    At most one read runs and one waits, however many callers there are.  A
    failed read is not reused: its waiters get the error.  A cancelled waiter
    stops waiting; the read goes on for the others.  Use it on one event loop.
    """

    def __init__(
        self, fetch: Callable[[], Awaitable[_T]], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._running: asyncio.Future[_T] | None = None
        self._running_since = 0.0
        self._queued: asyncio.Future[_T] | None = None
        self._last: tuple[_T, float] | None = None
        self.runs = 0
        """Reads started so far."""

    async def get(self, max_age_s: float = 0.0) -> _T:
        """A value read no earlier than ``max_age_s`` seconds before this call."""
        oldest = self._clock() - max_age_s
        last = self._last
        if last is not None and last[1] >= oldest:
            return last[0]
        running = self._running
        if running is not None and self._running_since >= oldest:
            return await asyncio.shield(running)
        task = self._queued
        if task is None:
            task = asyncio.ensure_future(self._read(running))
            task.add_done_callback(_consume)
            if running is None:
                self._running, self._running_since = task, self._clock()
            else:
                self._queued = task
        return await asyncio.shield(task)

    def cancel(self) -> None:
        """Cancel the running and the waiting read (their waiters get CancelledError)."""
        for task in (self._queued, self._running):
            if task is not None:
                task.cancel()

    async def _read(self, previous: asyncio.Future[_T] | None) -> _T:
        if previous is not None:
            await asyncio.wait([previous])  # its outcome belongs to its own waiters
            self._queued = None
            current = asyncio.current_task()
            assert current is not None
            self._running, self._running_since = current, self._clock()
        started = self._running_since
        self.runs += 1
        try:
            value = await self._fetch()
        finally:
            self._running = None
        if self._last is None or started >= self._last[1]:
            self._last = (value, started)
        return value


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
