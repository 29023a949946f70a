"""The sync loop: lease a batch, send it, settle it; back off on failure.

It never blocks scanning: it only talks to the outbox through the outbox
thread, and a dead service just grows the backlog.  Link state is kept for
status lines and the TUI.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from dataclasses import dataclass

from scanner_agent.config import SyncConfig
from scanner_agent.errors import (
    AuthError,
    BatchRejectedError,
    BatchTooLargeError,
    ProtocolError,
    TransientSyncError,
)
from scanner_agent.intake import OutboxThread
from scanner_agent.sync._client import TraceApiClient

log = logging.getLogger(__name__)


class LinkState(enum.StrEnum):
    """How the agent's link to the trace service looks."""

    UNKNOWN = "unknown"
    """Nothing sent yet."""
    ONLINE = "online"
    """The last request succeeded."""
    DEGRADED = "degraded"
    """The service answered but asked us to slow down, or sent a bad reply."""
    OFFLINE = "offline"
    """The service cannot be reached."""
    AUTH_FAILED = "auth_failed"
    """The token was refused: syncing paused until it is fixed (scans still queue)."""
    DISABLED = "disabled"
    """Syncing turned off in config."""


@dataclass
class SyncStats:
    """Counters since start."""

    batches: int = 0
    delivered: int = 0
    duplicate: int = 0
    rejected: int = 0
    failures: int = 0
    last_error: str | None = None
    last_success_at: float | None = None


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(max, initial * 2**attempt)]."""
    ceiling = min(maximum, initial * (2 ** min(attempt, 30)))
    return rng.uniform(0, ceiling)


class SyncLoop:
    """Drains the outbox to the trace service."""

    def __init__(
        self,
        thread: OutboxThread,
        client: TraceApiClient,
        cfg: SyncConfig,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._thread = thread
        self._client = client
        self.cfg = cfg
        self.state = LinkState.UNKNOWN
        self.stats = SyncStats()
        self._wake = asyncio.Event()
        self._rng = rng or random.Random()
        self._failures = 0
        self._batch_limit = cfg.batch_size
        self._last_logged: str | None = None

    def wake(self, _count: int = 0) -> None:
        """Tell the loop new scans were committed (called after each group commit)."""
        self._wake.set()

    async def _idle(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    def _note_failure(self, state: LinkState, message: str) -> None:
        self.state = state
        self.stats.failures += 1
        self.stats.last_error = message
        # Log a failure once when it starts or changes, not on every retry.
        if message != self._last_logged:
            log.warning("sync: %s", message)
            self._last_logged = message

    async def run_once(self) -> bool:
        """Lease and send one batch.  Returns False when there was nothing to send."""
        outbox = self._thread.outbox
        batch = await self._thread.call(
            outbox.lease,
            self._batch_limit,
            lease_s=self.cfg.lease_s,
            max_bytes=self.cfg.batch_bytes,
        )
        if batch is None:
            return False
        try:
            results = await self._client.send_batch(batch)
        except BatchTooLargeError as exc:
            await self._thread.call(outbox.unbatch, batch.batch_id)
            self._batch_limit = max(1, len(batch.events) // 2)
            self._note_failure(LinkState.DEGRADED, f"{exc}; batch size now {self._batch_limit}")
            return True
        except BatchRejectedError as exc:
            n = await self._thread.call(outbox.dead_letter_batch, batch.batch_id, str(exc))
            self._note_failure(LinkState.DEGRADED, f"{exc}; {n} scans moved to dead letters")
            return True
        except (TransientSyncError, ProtocolError, AuthError) as exc:
            await self._thread.call(outbox.release, batch.batch_id, str(exc))
            raise
        summary = await self._thread.call(outbox.settle, batch.batch_id, results)
        self.state = LinkState.ONLINE
        self._failures = 0
        self._last_logged = None
        self.stats.batches += 1
        self.stats.delivered += summary.accepted + summary.duplicate
        self.stats.duplicate += summary.duplicate
        self.stats.rejected += summary.rejected
        self.stats.last_success_at = time.time()
        if summary.rejected:
            log.warning(
                "sync: service rejected %d scans of batch %s", summary.rejected, batch.batch_id
            )
        return True

    async def run(self) -> None:
        """Sync until cancelled."""
        if not self.cfg.enabled:
            self.state = LinkState.DISABLED
            await asyncio.Event().wait()
        while True:
            try:
                busy = await self.run_once()
            except AuthError as exc:
                self._note_failure(LinkState.AUTH_FAILED, str(exc))
                await self._idle(self.cfg.backoff_max_s)
                continue
            except (TransientSyncError, ProtocolError) as exc:
                state = LinkState.DEGRADED if isinstance(exc, ProtocolError) else LinkState.OFFLINE
                if isinstance(exc, TransientSyncError) and exc.retry_after is not None:
                    state = LinkState.DEGRADED
                self._note_failure(state, str(exc))
                delay = backoff_delay(
                    self._failures, self.cfg.backoff_initial_s, self.cfg.backoff_max_s, self._rng
                )
                if isinstance(exc, TransientSyncError) and exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, self.cfg.backoff_max_s))
                self._failures += 1
                await asyncio.sleep(delay)
                continue
            if not busy:
                await self._idle(self.cfg.idle_poll_s)
