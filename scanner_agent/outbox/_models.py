"""Value objects passed in and out of the outbox."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple

from scanner_agent.outbox._states import backlog_count

__all__ = [
    "WIRE_FIELDS",
    "Batch",
    "BatchEvent",
    "BillCounts",
    "BillRow",
    "BillScanRow",
    "EnqueueResult",
    "EnqueueStatus",
    "EventResult",
    "FirstScan",
    "NewScan",
    "OutboxRow",
    "ProductGroup",
    "QueueStats",
    "RejectRecord",
    "Removal",
    "SettleSummary",
    "WalCheckpoint",
]


class NewScan(NamedTuple):
    """An accepted scan about to be committed.

    A named tuple rather than a dataclass: one is built per scan on the intake's
    hot path, and its fields are, in order, the outbox's insert parameters.
    """

    event_id: str
    code: str
    scheme: str
    raw: str
    symbology: str | None
    action: str
    bill: str
    device_id: str
    source: str
    scanned_at: str
    """RFC 3339 with offset."""
    product: str | None = None
    gtin: str | None = None
    batch_no: str | None = None
    expiry: str | None = None
    serial: str | None = None


@dataclass(frozen=True, slots=True)
class RejectRecord:
    """A scan refused before queueing (invalid or duplicate), kept for audit.

    Refusals are stored aggregated (``scanner_agent/outbox/_rejects.py``): read
    back, a record is the first refusal of its aggregate with ``count`` and
    ``last_at``.
    """

    raw: str
    code: str
    reason: str
    verdict: str
    device_id: str
    source: str
    scanned_at: str
    """When it was refused; for an aggregate read back, the first refusal's time."""
    count: int = 1
    """Refusals this record stands for (an aggregate read back: see ``_rejects``)."""
    last_at: str = ""
    """The last refusal's time (read back; ``scanned_at`` when it stands for one)."""


class EnqueueStatus(enum.StrEnum):
    """What happened to one :class:`NewScan` in a group commit."""

    QUEUED = "queued"
    DUPLICATE = "duplicate"


class EnqueueResult(NamedTuple):
    """The outcome for one scan of a group commit, known only after COMMIT.

    A named tuple: the writer builds one per scan while holding the GIL.
    """

    status: EnqueueStatus
    event_id: str
    seq: int | None
    """Sequence number when queued; the first scan's number for a duplicate."""


class BatchEvent(NamedTuple):
    """One event of a leased batch, in the shape Trace API v1 sends.

    A named tuple: a lease builds one per row straight from the query's row
    tuples, and a drain leases hundreds of thousands.
    """

    seq: int
    event_id: str
    code: str
    scheme: str
    action: str
    bill: str
    scanned_at: str
    source: str

    def to_wire(self) -> dict[str, str]:
        """The event as it goes in a ``POST /v1/batches`` body: every field but ``seq``."""
        return dict(zip(WIRE_FIELDS, self[1:], strict=True))


WIRE_FIELDS: tuple[str, ...] = BatchEvent._fields[1:]
"""The fields of an event on the wire (Trace API v1), in order: a :class:`BatchEvent` without ``seq``."""


@dataclass(frozen=True, slots=True)
class Batch:
    """A leased batch: the same ``batch_id`` always carries the same events."""

    batch_id: str
    events: tuple[BatchEvent, ...]
    attempts: int
    """How many times this batch was leased before (0 on first send)."""
    events_json: str | None = field(default=None, compare=False, repr=False)
    """The events as a JSON array of :meth:`BatchEvent.to_wire` objects, in order,
    rendered by SQLite during the lease (C code, no GIL) so a sender need not
    encode them one by one; ``None`` when not rendered."""


class EventResult(NamedTuple):
    """The service's verdict on one event (a named tuple: one per event of every reply)."""

    status: str
    """``accepted``, ``duplicate`` or ``rejected``."""
    reason: str | None = None


class WalCheckpoint(NamedTuple):
    """What one WAL checkpoint did: its mode and the three numbers SQLite reports."""

    mode: str
    """``PASSIVE`` or ``TRUNCATE`` (see :meth:`Outbox.checkpoint`)."""
    busy: bool
    """It could not finish without waiting for a reader or writer, and did not wait."""
    log_frames: int
    """Frames in the WAL when it ran (0 after a TRUNCATE that finished)."""
    checkpointed_frames: int
    """Of those, how many are now in the database file."""


@dataclass(frozen=True, slots=True)
class SettleSummary:
    """Counts from settling one batch."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A snapshot of the outbox for status, TUI and ``queue stats``."""

    counts: dict[str, int]
    """Rows per :class:`RowState` (every state, each row in exactly one; see ``_states``)."""
    rejects: int
    """Scans refused at intake (invalid or duplicate scans)."""
    oldest_pending_at: str | None
    """``scanned_at`` of the oldest row not yet delivered (pending, held or in flight)."""
    batches_open: int
    file_bytes: int
    wal_bytes: int
    schema_version: int
    removed: int = 0
    """Scans taken off their bill (kept for audit, never sent): ``counts["removed"]``."""
    held: int = 0
    """Scans held back because their bill is still open (part of the backlog): ``counts["held"]``."""

    @property
    def backlog(self) -> int:
        """Rows still owed to the service (pending, held or in flight)."""
        return backlog_count(self.counts)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A full outbox row for listing, lookup and export."""

    seq: int
    event_id: str
    code: str
    scheme: str
    raw: str
    symbology: str | None
    product: str | None
    action: str
    bill: str
    device_id: str
    source: str
    scanned_at: str
    state: str
    """The row's :class:`~scanner_agent.outbox.RowState` value (``held`` and ``removed``
    included), not the raw ``scans.state`` column."""
    batch_id: str | None
    result: str | None
    reason: str | None
    attempts: int
    settled_at: str | None
    removed: int = 0
    """1 when the scan was taken off its bill (see the ``removals`` table)."""


# -- rows of the bill tables (``_bill_store.py``) ------------------------------------


class BillRow(NamedTuple):
    """An opened bill as stored (its derived state is the bills package's)."""

    number: str
    type: int
    action: str
    device_id: str
    from_party: str
    to_party: str
    note: str
    state: str
    """The stored state: ``open`` or ``closed``."""
    opened_at: str
    closed_at: str | None


class FirstScan(NamedTuple):
    """The first scan under a number never opened as a bill (a default bill)."""

    action: str
    device_id: str
    scanned_at: str


class BillCounts(NamedTuple):
    """Counts over a bill's scans."""

    states: dict[str, int]
    """Rows per :class:`~scanner_agent.outbox.RowState` value (every state present)."""
    duplicate: int
    """Delivered rows the service answered ``duplicate``."""
    cartons: int
    """Scans (not removed) of a code known to hold more than one unit."""
    units: int
    """Units the scans (not removed) stand for: a carton counts as its units."""


class ProductGroup(NamedTuple):
    """A bill's scans (not removed) of one scanned product and the unit product it holds."""

    product: str | None
    unit_product: str
    scans: int
    cartons: int
    units: int


class BillScanRow(NamedTuple):
    """One scan of a bill with what it stands for and its delivery state."""

    seq: int
    code: str
    product: str
    unit_product: str
    units: int | None
    """Units it holds when known to hold several (else ``None``: one)."""
    scanned_at: str
    state: str
    result: str | None
    reason: str | None
    removed: bool


@dataclass(frozen=True, slots=True)
class Removal:
    """A scan taken off its bill: the row stays, this record (a ``removals`` row) says why."""

    seq: int
    event_id: str
    bill: str
    code: str
    reason: str
    origin: str
    removed_at: str
