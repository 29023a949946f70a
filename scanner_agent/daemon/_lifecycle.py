"""The daemon's lifecycle: its states, starting its sources, watching them, signals."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Any

from scanner_agent.kernel import ScannerAgentError, Source

log = logging.getLogger(__package__)  # the daemon's one logger name, as in its log lines


class DaemonState(enum.StrEnum):
    """Lifecycle of a :class:`Daemon`; a stopped daemon is not restarted."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


async def wait_sources_started(sources: Sequence[Source], tasks: list[asyncio.Task[None]]) -> None:
    """Wait until each source has started, or fail if one cannot (port in use, missing file).

    A source that exposes a ``started`` (or, for TCP, ``listening``) event is
    waited for until it is set or the source fails; readiness is never a guess
    about timing.  Sources without one get a few loop turns to fail early.

    Raises:
        ScannerAgentError: a source failed to start.
    """
    for _ in range(10):
        await asyncio.sleep(0)
    for src, t in zip(sources, tasks, strict=True):
        started = getattr(src, "started", None) or getattr(src, "listening", None)
        if isinstance(started, asyncio.Event):
            waiter = asyncio.create_task(started.wait())
            await asyncio.wait({waiter, t}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        if t.done() and not t.cancelled() and t.exception() is not None:
            exc = t.exception()
            raise ScannerAgentError(f"Failed to start source {src.name}: {exc}") from exc


async def watch(
    stop: asyncio.Task[bool], source_tasks: list[asyncio.Task[None]]
) -> BaseException | None:
    """Wait for a stop request; a source dying with an error stops the daemon (returned).

    Every source having finished (a replay) is no reason to stop: syncing goes on.
    """
    pending: set[asyncio.Task[Any]] = {stop, *source_tasks}
    while True:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if stop in done:
            return None
        for t in done:
            exc = t.exception() if not t.cancelled() else None
            if exc is not None:
                log.error("source task %s failed: %s", t.get_name(), exc)
                stop.cancel()
                return ScannerAgentError(f"{t.get_name()} failed: {exc}")


async def cancel_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended (whatever it raised)."""
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def install_handlers(stop: Callable[[], None], reload: Callable[[], None]) -> None:
    """SIGTERM and SIGINT call ``stop``; SIGHUP calls ``reload`` (on the running loop)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, reload)
