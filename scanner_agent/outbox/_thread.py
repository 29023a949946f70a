"""The outbox thread: every call on an open outbox, from asyncio, on one dedicated thread.

:class:`~scanner_agent.outbox.Outbox` is synchronous (SQLite, fsync at every
group commit).  The daemon's intake, sync loop, bill desk and sinks reach it
only through :meth:`OutboxThread.call`, so the event loop never blocks on the
disk, and one thread gives the outbox a strict order of operations: a bill
command, a group commit and a lease never interleave.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from scanner_agent.outbox._outbox import Outbox

__all__ = ["OutboxThread"]

_T = TypeVar("_T")


class OutboxThread:
    """Runs every outbox call on one dedicated thread, awaitable from asyncio.

    SQLite work (and its fsync) never runs on the event loop, and one thread
    means the outbox sees a strict order of operations.
    """

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")

    async def call(self, fn: Callable[..., _T], /, *args: object, **kwargs: object) -> _T:
        """Run ``fn(*args, **kwargs)`` on the outbox thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def shutdown(self) -> None:
        """Wait for queued calls to finish, then stop the thread."""
        self._executor.shutdown(wait=True)
