"""The contract between hardware sources and the agent core.

Every driver (tcp, stdin replay, serial, HID POS, keyboard wedge, camera) is a
:class:`Source`: an object with a ``name`` and an ``async run(intake)`` coroutine
that reads frames from its device and hands each one to the intake as a
:class:`RawScan`.  The intake parses the scan, commits it to the outbox and only
then returns a :class:`ScanOutcome`; the source turns that outcome into the
device's own feedback (an ``ACK`` line, a good-read beep, a bad-read pattern).

Keeping this contract tiny is deliberate: the core never learns how a device
talks, and a driver never learns how scans are stored.  Data flows one way,
driver -> parser -> outbox -> sync, with the outcome as the only thing flowing
back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable


def utc_now() -> datetime:
    """The capture timestamp used for scans: timezone-aware, UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RawScan:
    """One frame as a device delivered it, before any interpretation.

    ``data`` is kept as bytes so nothing is lost before the parser sees it
    (GS 0x1D separators, a symbology identifier, a trailing CR).
    """

    data: bytes
    """The frame's payload exactly as framed (terminator removed by the framer)."""
    source: str
    """Name of the configured source that read it, e.g. ``tcp:127.0.0.1:9100``."""
    device: str = ""
    """The physical device or peer within the source, e.g. a TCP peer address."""
    scanned_at: datetime = field(default_factory=utc_now)
    """When the frame was read (aware datetime); becomes the event's ``scanned_at``."""


class Verdict(enum.StrEnum):
    """What the agent did with a scan; what the operator hears or sees."""

    ACCEPTED = "accepted"
    """Committed to the outbox: good read."""
    INVALID = "invalid"
    """Not a trace code or malformed: bad read, nothing queued."""
    DUPLICATE = "duplicate"
    """Already queued for the same bill and action: bad read (distinct pattern)."""
    FULL = "full"
    """The outbox cannot take it (disk full or reserve reached): bad read and alarm."""
    ERROR = "error"
    """An internal fault while storing: bad read; the scan must be repeated."""


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """The intake's answer for one :class:`RawScan`, given only after commit."""

    verdict: Verdict
    code: str
    """The normalised code (or the cleaned raw text when it was not a trace code)."""
    reason: str | None = None
    """Why it was not accepted; ``None`` when accepted."""
    event_id: str | None = None
    """The outbox event id when accepted."""
    seq: int | None = None
    """The outbox sequence number when accepted."""

    @property
    def accepted(self) -> bool:
        """True when the scan is durably queued (the good-read promise)."""
        return self.verdict is Verdict.ACCEPTED


class Intake(Protocol):
    """What a source hands its frames to (implemented by the daemon)."""

    async def submit(self, scan: RawScan) -> ScanOutcome:
        """Parse, commit and answer one scan. Never raises for bad input."""
        ...


@runtime_checkable
class Source(Protocol):
    """A running reader of one configured scanner input."""

    name: str

    async def run(self, intake: Intake) -> None:
        """Read until cancelled, submitting every frame to ``intake``.

        A source recovers from its device's I/O errors by itself (reconnect with
        backoff); it only returns or raises when it cannot ever work (bad config).
        """
        ...
