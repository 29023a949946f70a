"""Parsing off the event loop, fairly across the connections that send frames.

The event loop answers every scanner and pings systemd's watchdog, so it must
never run work whose cost a sender chooses.  A cn20 code (20 digits) costs a
microsecond to parse and stays on the loop; any other frame (GS1, MA, junk,
up to ``max_frame`` bytes) is parsed on one dedicated thread.

The thread takes frames round-robin across submitters (a submitter is a
connection: source and device), one frame per turn: a scanner's frame waits
behind at most one frame of each other submitter, never behind a flood
queued by one of them.  The queue is bounded in frames; a submitter waits
(asynchronously) for room, which pushes back on its source.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

_R = TypeVar("_R")

MAX_QUEUED_FRAMES = 8192
"""Frames waiting for the parse thread; past it, submitters wait for room."""


class _Job(Generic[_R]):
    __slots__ = ("frames", "future", "loop", "results")

    def __init__(
        self,
        frames: Sequence[bytes],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[list[_R]],
    ) -> None:
        self.frames = frames
        self.loop = loop
        self.future = future
        self.results: list[_R] = []


def _deliver(future: asyncio.Future[list[_R]], results: list[_R] | BaseException) -> None:
    if future.done():  # the submitter was cancelled: nobody waits for it
        return
    if isinstance(results, BaseException):
        future.set_exception(results)
    else:
        future.set_result(results)


class ParseWorker(Generic[_R]):
    """One thread that applies ``parse`` to frames, round-robin across submitters."""

    def __init__(
        self, parse: Callable[[bytes], _R], *, max_queued: int = MAX_QUEUED_FRAMES
    ) -> None:
        self._parse = parse
        self.max_queued = max_queued
        self._cond = threading.Condition()
        self._queues: dict[Hashable, deque[_Job[_R]]] = {}
        self._turns: deque[Hashable] = deque()
        """Submitters with work, in the order they get their next frame parsed."""
        self._queued = 0
        self._room: list[asyncio.Future[None]] = []
        self._thread: threading.Thread | None = None
        self._closing = False
        self.parsed = 0
        """Frames parsed by the thread since start."""

    @property
    def queued(self) -> int:
        """Frames waiting or being parsed."""
        return self._queued

    async def parse(self, key: Hashable, frames: Sequence[bytes]) -> list[_R]:
        """Parse ``frames`` on the thread; results in order.  ``key`` names the submitter."""
        loop = asyncio.get_running_loop()
        while self._queued and self._queued + len(frames) > self.max_queued:
            waiter: asyncio.Future[None] = loop.create_future()
            self._room.append(waiter)
            await waiter
        future: asyncio.Future[list[_R]] = loop.create_future()
        with self._cond:
            if self._closing:
                raise RuntimeError("Failed to parse: the parse worker is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="parse", daemon=True)
                self._thread.start()
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = deque()
                self._turns.append(key)
            queue.append(_Job(frames, loop, future))
            self._queued += len(frames)
            self._cond.notify()
        try:
            return await future
        finally:
            self._queued_done(len(frames))

    def _queued_done(self, count: int) -> None:
        with self._cond:
            self._queued -= count
        waiters, self._room = self._room, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _run(self) -> None:
        parse = self._parse
        while True:
            with self._cond:
                while not self._turns and not self._closing:
                    self._cond.wait()
                if not self._turns:
                    return  # closing, and nothing left
                key = self._turns[0]
                job = self._queues[key][0]
            try:
                job.results.append(parse(job.frames[len(job.results)]))
            except Exception as exc:  # a parser bug fails this job, not the thread
                log.exception("parse worker: parser failed")
                self._finish(key, job, exc)
                continue
            self.parsed += 1
            if len(job.results) == len(job.frames):
                self._finish(key, job, job.results)
            else:
                with self._cond:
                    self._turns.rotate(-1)  # the next submitter's turn

    def _finish(self, key: Hashable, job: _Job[_R], outcome: list[_R] | BaseException) -> None:
        with self._cond:
            queue = self._queues[key]
            queue.popleft()
            self._turns.popleft()
            if queue:
                self._turns.append(key)
            else:
                del self._queues[key]
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            job.loop.call_soon_threadsafe(_deliver, job.future, outcome)

    def close(self) -> None:
        """Finish the queued frames, then stop the thread (idempotent)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
