"""The contract between hardware sources and the agent core (the kernel's scan types).

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

Hardware sources (serial, HID POS, keyboard wedge) also expose their device's
state as plain attributes, summarised by :class:`DeviceStatus`: ``connected``,
``device``, ``model``, ``last_scan_at`` and ``errors`` (see
``drivers/device.py``), so the daemon and the TUI can show a scanner that is
unplugged without knowing which driver reads it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = [
    "Clock",
    "DeviceStatus",
    "Intake",
    "RawScan",
    "ScanOutcome",
    "Source",
    "Verdict",
    "utc_now",
]


def utc_now() -> datetime:
    """The capture timestamp used for scans: timezone-aware, UTC."""
    return datetime.now(UTC)


Clock = Callable[[], datetime]
"""Where a part reads the time (an aware UTC datetime): :func:`utc_now`, or a test's clock."""


@dataclass(slots=True)
class RawScan:
    """One frame as a device delivered it, before any interpretation.

    Treat it as immutable.  It is not declared frozen because one is built per
    frame on the hot path, and a frozen dataclass's ``__init__`` sets every
    field through ``object.__setattr__``: 2.5 times the cost (measured,
    docs/performance.md).

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


class ScanOutcome(NamedTuple):
    """The intake's answer for one :class:`RawScan`, given only after commit.

    A named tuple (immutable, and cheap to build once per scan on the hot path).
    """

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


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A snapshot of one hardware source's device, for status lines and the TUI."""

    source: str
    """The source's name."""
    connected: bool
    """True while the device is open and being read."""
    device: str
    """The device path (or URL) being read or waited for."""
    model: str | None = None
    """Vendor and model from the firmware profile, when known."""
    last_scan_at: float | None = None
    """``time.time()`` of the last frame read, or ``None`` before the first."""
    errors: int = 0
    """I/O failures, malformed input and handler faults since the source started."""
    reason: str | None = None
    """Why the device is offline (the last open or read error), when it is."""


class Intake(Protocol):
    """What a source hands its frames to (implemented by the daemon)."""

    async def submit(self, scan: RawScan) -> ScanOutcome:
        """Parse, commit and answer one scan. Never raises for bad input."""
        ...

    async def submit_many(self, scans: list[RawScan]) -> list[ScanOutcome]:
        """Like :meth:`submit` for frames that arrived together; outcomes in order.

        Sources that read many frames at once (a TCP segment, a replayed file)
        use this so the lot shares one group-commit entry.
        """
        ...


@runtime_checkable
class Source(Protocol):
    """A running reader of one configured scanner input."""

    name: str

    async def run(self, intake: Intake) -> None:
        """Read until cancelled, submitting every frame to ``intake``.

        A source recovers from its device's I/O errors by itself (reconnect with
        backoff); it only returns or raises when it cannot ever work (bad config).
        A source whose start can fail (a port in use, a missing file) should
        expose a ``started: asyncio.Event`` and set it once its input is open:
        the daemon reports ready only after every such event is set, and a
        source that raises before that fails the daemon's start.
        """
        ...
