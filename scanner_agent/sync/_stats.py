"""What the sync loop reports: the link's state, its counters and the latest rejected scans
(``Daemon.status()['sync']``, the metrics, the TUI)."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from scanner_agent.status import RejectionReport, SyncStatus
from scanner_agent.times import iso

RECENT_REJECTIONS = 50
"""How many of the latest rejected scans :class:`SyncStats` keeps for the operator."""


class LinkState(enum.StrEnum):
    """How the agent's link to the trace service looks."""

    UNKNOWN = "unknown"
    """Nothing sent yet."""
    ONLINE = "online"
    """The last request succeeded."""
    DEGRADED = "degraded"
    """The service answered but asked us to slow down, failed, or sent a bad reply."""
    OFFLINE = "offline"
    """The service cannot be reached."""
    AUTH_FAILED = "auth_failed"
    """The token was refused: syncing paused until it is fixed (scans still queue)."""
    DISABLED = "disabled"
    """Syncing turned off in config."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A scan the service refused, kept for the operator (status, TUI)."""

    at: float
    """When the verdict came (Unix time)."""
    batch_id: str
    seq: int
    event_id: str
    code: str
    reason: str

    def report(self) -> RejectionReport:
        """The status's form of it (time as ISO 8601)."""
        return RejectionReport(
            at=iso(self.at),
            batch_id=self.batch_id,
            seq=self.seq,
            event_id=self.event_id,
            code=self.code,
            reason=self.reason,
        )


@dataclass
class SyncStats:
    """Counters since start, and what the operator should see now."""

    batches: int = 0
    """Batches the service answered with verdicts."""
    delivered: int = 0
    """Scans the service holds (``accepted`` or ``duplicate``)."""
    duplicate: int = 0
    """Of those, scans the service already had under another event."""
    rejected: int = 0
    """Scans moved to dead letters (refused by the service)."""
    failures: int = 0
    """Failed sends (each is retried)."""
    last_error: str | None = None
    """The latest problem with sending, kept after the link recovers (see ``last_error_current``)."""
    last_error_at: float | None = None
    """When ``last_error`` happened (Unix time)."""
    last_error_current: bool = False
    """``last_error`` still describes the link: nothing newer has succeeded since.  An
    operator reading ``status`` must not take an error from before a recovery for a live one."""
    last_success_at: float | None = None
    in_flight: int = 0
    """Batches awaiting the service right now."""
    consecutive_failures: int = 0
    retry_at: float | None = None
    """While backing off: when the next attempt is due (Unix time)."""
    batch_limit: int = 0
    """Events per batch now (halved after a 413)."""
    alarm: str | None = None
    """A problem that needs a person (the token was refused)."""
    recent_rejections: deque[Rejection] = field(
        default_factory=lambda: deque(maxlen=RECENT_REJECTIONS)
    )
    """The latest refused scans, oldest first."""

    def snapshot(self, link: LinkState) -> SyncStatus:
        """A frozen copy for the status, with the link's state; times as ISO 8601 (UTC)."""
        return SyncStatus(
            link=link.value,
            batches=self.batches,
            delivered=self.delivered,
            duplicate=self.duplicate,
            rejected=self.rejected,
            failures=self.failures,
            consecutive_failures=self.consecutive_failures,
            last_error=self.last_error,
            last_error_at=iso(self.last_error_at),
            last_error_current=self.last_error_current,
            last_success_at=iso(self.last_success_at),
            in_flight=self.in_flight,
            retry_at=iso(self.retry_at),
            batch_limit=self.batch_limit,
            alarm=self.alarm,
            recent_rejections=tuple(r.report() for r in self.recent_rejections),
        )
