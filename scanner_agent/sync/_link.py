"""The sync loop's bookkeeping of the link: which outcome may set the link state, the last
error, the alarms, the backoff after a failure, and one log line per kind of failure.

A mixin of :class:`~scanner_agent.sync._loop.SyncLoop` (its state lives there): every method
runs on the event loop and never awaits, so an outcome is recorded in one step.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from scanner_agent.kernel import SiteProblemError, TransientSyncError, backoff_delay
from scanner_agent.outbox import Batch
from scanner_agent.sync._settings import LoopSettings
from scanner_agent.sync._stats import RECENT_REJECTIONS, LinkState, Rejection, SyncStats

log = logging.getLogger("scanner_agent.sync._loop")
"""The loop's logger: its lines keep the name operators filter on."""

RETRY_AFTER_CAP_S = 900.0
"""A ``Retry-After`` above this (or above ``backoff_max_s``, if larger) is cut to it."""
_REJECTIONS_LOGGED = 3
"""Rejected scans named in the log line of one batch; the rest are counted."""


def _kind(exc: BaseException) -> str:
    """What a failure is, for logging it once rather than on every retry."""
    status = getattr(exc, "status_code", None)
    return type(exc).__name__ + (f":{status}" if status is not None else "")


class LinkBook:
    """Records each outcome of a request (see the module docstring)."""

    platform: str
    credential: str
    credential_source: str
    cfg: LoopSettings
    state: LinkState
    stats: SyncStats
    _rng: random.Random
    _window: int
    _resume_at: float
    _failures: int
    _state_epoch: int
    _last_kind: str | None
    _site_alarm: bool

    def _current(self, epoch: int) -> bool:
        """Whether an outcome of the request started as ``epoch`` may set the link state."""
        if epoch < self._state_epoch:
            return False
        self._state_epoch = epoch
        return True

    def _note(self, epoch: int, exc: BaseException, state: LinkState, message: str) -> None:
        """Record a problem that needs no backoff; log it once per kind."""
        current = self._current(epoch)
        self._error(message, current=current)
        if current:
            self.state = state
        self._log_once(exc, message)

    def _failed(self, epoch: int, exc: BaseException, state: LinkState, message: str) -> None:
        """Record a failed send: back off (and drop to one batch in flight) unless it is stale."""
        self.stats.failures += 1
        current = self._current(epoch)
        self._error(message, current=current)
        if not current:
            log.debug("sync: %s (stale: a newer request has finished)", message)
            return
        self._window = 1
        self.state = state
        self._failures += 1
        self.stats.consecutive_failures = self._failures
        if state is LinkState.AUTH_FAILED:
            self.stats.alarm = (
                f"{self.platform} refused the {self.credential} ({message}); scans are kept "
                f"and syncing resumes when {self.credential_source} changes"
            )
            log.error("ALARM: sync: %s", self.stats.alarm)
            self._last_kind = _kind(exc)
            return
        if isinstance(exc, SiteProblemError):
            # Nothing is wrong with the batch: it is held (released, retried with backoff)
            # and the alarm says what to fix, until a call passes.
            alarm = (
                f"{self.platform}: {message}; scans are kept and sent by themselves "
                "once it is fixed"
            )
            if alarm != self.stats.alarm:
                log.error("ALARM: sync: %s", alarm)
            self.stats.alarm = alarm
            self._site_alarm = True
        delay = backoff_delay(
            self._failures - 1, self.cfg.backoff_initial_s, self.cfg.backoff_max_s, self._rng
        )
        retry_after = exc.retry_after if isinstance(exc, TransientSyncError) else None
        if retry_after is not None:
            delay = max(delay, min(retry_after, max(self.cfg.backoff_max_s, RETRY_AFTER_CAP_S)))
        self._resume_at = asyncio.get_running_loop().time() + delay
        self.stats.retry_at = time.time() + delay
        self._log_once(exc, f"{message} (retrying in {delay:.1f} s)")

    def _error(self, message: str, *, current: bool) -> None:
        """Keep ``message`` as the last error, now.

        It is current unless a request started later already finished (its
        outcome set the link state): then it stays as current as that one left it.
        """
        self.stats.last_error = message
        self.stats.last_error_at = time.time()
        if current:
            self.stats.last_error_current = True

    def _succeeded(self, epoch: int) -> None:
        self.stats.last_success_at = time.time()
        if not self._current(epoch):
            return
        self.stats.last_error_current = False
        if self._failures:
            log.info("sync: delivering again after %d failed attempts", self._failures)
        if self._site_alarm:
            log.info("sync: the platform takes this site's calls again; alarm cleared")
            self.stats.alarm = None
            self._site_alarm = False
        self.state = LinkState.ONLINE
        self._window = self.cfg.max_in_flight
        self._failures = 0
        self._resume_at = 0.0
        self._last_kind = None
        self.stats.consecutive_failures = 0
        self.stats.retry_at = None

    def _log_once(self, exc: BaseException, message: str) -> None:
        """Log a failure when it starts or changes kind, not on every retry."""
        kind = _kind(exc)
        if kind == self._last_kind:
            log.debug("sync: %s", message)
            return
        self._last_kind = kind
        log.warning("sync: %s", message)

    def _rejected(self, batch: Batch, reasons: dict[str, str], count: int) -> None:
        """Keep and log scans the service refused (they are dead letters in the outbox)."""
        self.stats.rejected += count
        now = time.time()
        refused = [e for e in batch.events if e.event_id in reasons]
        for e in refused[-RECENT_REJECTIONS:]:
            self.stats.recent_rejections.append(
                Rejection(now, batch.batch_id, e.seq, e.event_id, e.code, reasons[e.event_id])
            )
        named = "; ".join(f"{e.code}: {reasons[e.event_id]}" for e in refused[:_REJECTIONS_LOGGED])
        more = len(refused) - _REJECTIONS_LOGGED
        log.warning(
            "sync: the service rejected %d of %d scans in batch %s (dead letters; "
            "`scanner-agent queue ls --state rejected`): %s%s",
            len(refused),
            len(batch.events),
            batch.batch_id,
            named,
            f"; and {more} more" if more > 0 else "",
        )
