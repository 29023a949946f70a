"""Fault hooks: make the reference service answer the next batch requests with 503 or 429.

Tests and demos arm a :class:`Faults` object (at construction or while the
server runs, from any thread); each ``POST /v1/batches`` that passes the token
check takes the next armed fault, if any, and is answered with it instead of
being processed.  Nothing is read or stored for a faulted request.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import NamedTuple

__all__ = ["Fault", "Faults"]


class Fault(NamedTuple):
    """One simulated failure: the status and the ``Retry-After`` seconds (None: no header)."""

    status: int
    retry_after: int | None


def _check(status: int, retry_after: int | None) -> Fault:
    if status != 429 and not 500 <= status <= 599:
        raise ValueError(f"fault status must be 429 or 5xx, not {status}")
    if retry_after is not None and retry_after < 0:
        raise ValueError(f"retry_after must be >= 0 seconds, not {retry_after}")
    return Fault(status, retry_after)


class Faults:
    """A thread-safe queue of faults for the next batch requests, served first in, first out.

    ``Faults(2)`` answers the next two batch requests with 503 and
    ``Retry-After: 1``; ``faults.throttle(3, retry_after=0)`` then queues three
    429s after whatever is still armed.
    """

    def __init__(
        self, fail_next: int = 0, *, status: int = 503, retry_after: int | None = 1
    ) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._injected = 0
        if fail_next:
            self.fail_next(fail_next, status=status, retry_after=retry_after)

    def fail_next(self, count: int, *, status: int = 503, retry_after: int | None = 1) -> None:
        """Queue ``count`` faults answering ``status`` (429 or 5xx) with ``Retry-After``."""
        if count < 0:
            raise ValueError(f"count must be >= 0, not {count}")
        fault = _check(status, retry_after)
        with self._lock:
            self._queue.extend([fault] * count)

    def unavailable(self, count: int = 1, *, retry_after: int | None = 1) -> None:
        """Queue ``count`` × ``503 Service Unavailable``."""
        self.fail_next(count, status=503, retry_after=retry_after)

    def throttle(self, count: int = 1, *, retry_after: int | None = 1) -> None:
        """Queue ``count`` × ``429 Too Many Requests``."""
        self.fail_next(count, status=429, retry_after=retry_after)

    def clear(self) -> None:
        """Drop every armed fault: the next request is served normally."""
        with self._lock:
            self._queue.clear()

    def take(self) -> Fault | None:
        """The fault for the request at hand (consumed), or None to serve it normally."""
        with self._lock:
            if not self._queue:
                return None
            self._injected += 1
            return self._queue.popleft()

    @property
    def pending(self) -> int:
        """How many faults are still armed."""
        with self._lock:
            return len(self._queue)

    @property
    def injected(self) -> int:
        """How many requests have been answered with a fault so far."""
        with self._lock:
            return self._injected

    def __repr__(self) -> str:
        with self._lock:
            return f"Faults(pending={len(self._queue)}, injected={self._injected})"
