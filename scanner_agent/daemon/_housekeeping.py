"""The daemon's background loops: outbox housekeeping, and systemd's readiness and watchdog."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from scanner_agent.config import OutboxConfig
from scanner_agent.control import AgentStatus
from scanner_agent.kernel import ScannerAgentError
from scanner_agent.ops.sdnotify import Notifier, watchdog_interval_s
from scanner_agent.outbox import OutboxThread

log = logging.getLogger(__package__)  # the daemon's one logger name, as in its log lines

HOUSEKEEPING_INTERVAL_S = 60.0
"""Seconds between two rounds of housekeeping (``Daemon.housekeeping_interval_s``)."""
PRUNE_STEP = 500
"""Rows pruned in one short transaction; scans are let through between steps."""


async def _prune(thread: OutboxThread, prune: Callable[..., int], cutoff: datetime) -> None:
    """``prune(cutoff, limit=...)`` on the outbox thread in small steps until none are left."""
    for _ in range(10_000):
        if await thread.call(prune, cutoff, limit=PRUNE_STEP) < PRUNE_STEP:
            return
        await asyncio.sleep(0.05)


async def housekeeping(thread: OutboxThread, cfg: OutboxConfig, interval_s: float) -> None:
    """Prune delivered rows and refusal records past retention, checkpoint the WAL, in small steps.

    The checkpoint never waits for a lock (see :meth:`Outbox.checkpoint`): it
    runs on the outbox thread, where a wait would hold up every scan's ACK.
    It empties the WAL file once a tick passes with nothing written.
    """
    outbox = thread.outbox
    while True:
        await asyncio.sleep(interval_s)
        try:
            now = datetime.now(UTC)
            await _prune(thread, outbox.prune_delivered, now - timedelta(days=cfg.retention_days))
            now = datetime.now(UTC)
            await _prune(
                thread, outbox.prune_rejects, now - timedelta(days=cfg.rejects_retention_days)
            )
            done = await thread.call(outbox.checkpoint)
            if done.busy:
                log.debug(
                    "housekeeping: WAL %s checkpoint stopped at a reader: %s", done.mode, done
                )
        except ScannerAgentError as exc:
            log.warning("housekeeping: %s", exc)


def status_line(status: AgentStatus) -> str:
    """The one-line summary systemd shows (``systemctl status``)."""
    return f"backlog {status.backlog}, link {status.link}, scanned {status.scanned}"


async def systemd(ready: asyncio.Event, status: Callable[[float], Awaitable[AgentStatus]]) -> None:
    """Tell systemd we are ready, ping its watchdog from this loop, publish STATUS=.

    The pings come from the event loop itself, so a stalled loop (a blocked
    call, a deadlock) stops them and systemd restarts the service.
    """
    notifier = Notifier()
    if not notifier.enabled:
        return
    await ready.wait()
    notifier.notify(ready=1, status="running")
    interval = watchdog_interval_s()
    period = min(interval, 5.0) if interval else 5.0
    last_status = ""
    try:
        while True:
            if interval:
                notifier.notify(watchdog=1)
            try:
                # Counts one period old will do for a status line: a large outbox's count
                # (seconds) then runs at most once a period, shared with other callers.
                line = status_line(await status(period))
            except ScannerAgentError as exc:
                line = f"outbox error: {exc}"
            if line != last_status:
                notifier.notify(status=line)
                last_status = line
            await asyncio.sleep(period)
    finally:
        notifier.notify(stopping=1)
        notifier.close()
