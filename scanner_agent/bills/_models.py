"""Value objects of the bill desk; every one turns into JSON with :func:`dataclasses.asdict`."""

from __future__ import annotations

from dataclasses import dataclass, field

from scanner_agent.outbox import BillState, Removal

__all__ = [
    "Bill",
    "BillScan",
    "BillState",
    "BillTotals",
    "BillView",
    "CodeHistory",
    "ProgressLine",
    "Removal",
]


@dataclass(frozen=True, slots=True)
class BillTotals:
    """Counts over a bill's scans: one per row state (``outbox._states``), plus sums."""

    scans: int = 0
    """Scans on the bill (removed ones not counted)."""
    cartons: int = 0
    """Of those, scans of a code known to hold more than one unit (a carton or case)."""
    units: int = 0
    """Units the scans stand for (a carton counts as its units)."""
    removed: int = 0
    """Scans taken off the bill (kept for audit, never sent)."""
    pending: int = 0
    """Not yet sent, free to go (the bill is closed, or a default bill)."""
    held: int = 0
    """Not yet sent, held back because the bill is open."""
    in_flight: int = 0
    delivered: int = 0
    """The service holds them (``accepted`` or ``duplicate``)."""
    duplicate: int = 0
    """Of the delivered, the service already had the code under another event."""
    rejected: int = 0
    """The service refused them (dead letters, reason kept)."""
    quarantined: int = 0
    """Damaged on disk and taken out of delivery (never sent; see docs/outbox.md)."""


@dataclass(frozen=True, slots=True)
class Bill:
    """A bill (出入库单据) and its totals."""

    number: str
    type: int | None
    """The platform's bill type code; ``None`` for a default bill."""
    type_zh: str
    type_en: str
    action: str
    device_id: str
    from_party: str
    to_party: str
    note: str
    state: str
    """A :class:`BillState` value (``outbox.bill_state``)."""
    opened_at: str | None
    closed_at: str | None
    totals: BillTotals = field(default_factory=BillTotals)


@dataclass(frozen=True, slots=True)
class ProgressLine:
    """One product of a bill against its expected list."""

    product: str
    name: str
    expected: int
    scanned: int
    """Units scanned (cartons count as their units)."""
    cartons: int
    missing: int
    extra: int


@dataclass(frozen=True, slots=True)
class BillScan:
    """One scan of a bill with its delivery result."""

    seq: int
    code: str
    product: str
    name: str
    units: int
    carton: bool
    scanned_at: str
    state: str
    """Row state (``outbox.RowState``): ``pending``, ``held``, ``in_flight``, ``delivered``,
    ``rejected`` or ``removed``."""
    result: str | None
    """The service's verdict: ``accepted``, ``duplicate``, ``rejected`` (``None`` before)."""
    reason: str | None
    removed: bool


@dataclass(frozen=True, slots=True)
class BillView:
    """Everything the bill screen shows."""

    bill: Bill
    lines: tuple[ProgressLine, ...]
    """Per product: expected, scanned, missing, extra (expected products first)."""
    scans: tuple[BillScan, ...]
    """The latest scans, newest first (removed ones included, marked)."""
    removals: tuple[Removal, ...]
    has_expected: bool


@dataclass(frozen=True, slots=True)
class CodeHistory:
    """Everything the outbox knows about one code."""

    code: str
    scans: tuple[dict[str, object], ...]
    """Outbox rows of the code, oldest first."""
    refused: tuple[dict[str, object], ...]
    """Times it was refused at intake (duplicate scans, invalid reads): one entry per
    aggregate, with ``count`` refusals from ``scanned_at`` (the first) to ``last_at``."""
    removals: tuple[Removal, ...]
