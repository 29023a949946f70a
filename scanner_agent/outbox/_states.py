"""Row and bill states: the one definition every report uses.

A scan's row is in exactly one :class:`RowState`.  Four of them are what the
``scans.state`` column stores (:data:`STORED_STATES`); two follow from other
facts and are decided here, once:

* ``removed``: the scan was taken off its bill (``scans.removed = 1``; the
  row stays for audit and is never sent), whatever its stored state;
* ``held``: a pending scan whose bill is still open (the outbox does not lease
  it until the bill closes).

:func:`row_state_where` gives the SQL condition of each state and
:func:`row_state_sql` the ``CASE`` expression built from those same
conditions, so a count (``queue stats``, ``doctor``, metrics, ``status``), a
filter (``queue ls --state``), a listing and a lease can never disagree on
what a state means.  A bill's state (:class:`BillState`) follows from its
stored state and its rows' states by :func:`bill_state`.

Every reader goes through these: ``Outbox.stats``/``rows``/``lease``, the
bill book, ``doctor`` (on its own read-only connection), and through
``Daemon.status()`` the control socket, metrics and the TUI.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Mapping, Sequence

__all__ = [
    "BACKLOG_STATES",
    "OPEN_BILLS",
    "SENDABLE",
    "STORED_STATES",
    "BillState",
    "RowState",
    "backlog_count",
    "backlog_where",
    "bill_state",
    "count_row_states",
    "row_state",
    "row_state_sql",
    "row_state_where",
]


class RowState(enum.StrEnum):
    """Where a scan is on its way to the trace service; every row is in exactly one."""

    PENDING = "pending"
    """Committed locally, waiting to be sent."""
    HELD = "held"
    """Committed, waiting for its bill to close (an open bill's scans are not sent)."""
    IN_FLIGHT = "in_flight"
    """Leased into a batch that is being (or was being) sent."""
    DELIVERED = "delivered"
    """The service answered ``accepted`` or ``duplicate``: done."""
    REJECTED = "rejected"
    """Dead letter: the service refused it; kept with the reason, re-sendable."""
    REMOVED = "removed"
    """Taken off its bill (``bill undo``/``remove``): kept for audit, never sent."""
    QUARANTINED = "quarantined"
    """Damaged on disk (not UTF-8, a failed checksum, an impossible state): never sent,
    kept with its bytes in the ``quarantine`` table (docs/outbox.md, "Damaged rows")."""


STORED_STATES: tuple[RowState, ...] = (
    RowState.PENDING,
    RowState.IN_FLIGHT,
    RowState.DELIVERED,
    RowState.REJECTED,
    RowState.QUARANTINED,
)
"""The values the ``scans.state`` column holds (its CHECK rule; quarantined since migration 8)."""

BACKLOG_STATES: frozenset[RowState] = frozenset(
    {RowState.PENDING, RowState.HELD, RowState.IN_FLIGHT}
)
"""Rows still owed to the service: "not yet delivered" in every report."""

OPEN_BILLS = "(SELECT number FROM bills WHERE state = 'open')"
"""The numbers of the bills now open (their scans are held)."""

SENDABLE = "removed = 0 AND bill NOT IN " + OPEN_BILLS
"""A pending row that may be leased: not removed, and its bill not open (unqualified columns)."""

_CONDITIONS: dict[RowState, str] = {
    # A removed row is removed whatever its stored state; the others require removed = 0.
    RowState.REMOVED: "{t}removed != 0",
    # The literal "state = 'pending'" lets SQLite use the partial index over pending rows.
    RowState.HELD: "{t}state = 'pending' AND {t}removed = 0 AND {t}bill IN " + OPEN_BILLS,
    RowState.PENDING: "{t}state = 'pending' AND {t}removed = 0 AND {t}bill NOT IN " + OPEN_BILLS,
    RowState.IN_FLIGHT: "{t}state = 'in_flight' AND {t}removed = 0",
    RowState.DELIVERED: "{t}state = 'delivered' AND {t}removed = 0",
    RowState.REJECTED: "{t}state = 'rejected' AND {t}removed = 0",
    RowState.QUARANTINED: "{t}state = 'quarantined' AND {t}removed = 0",
}
"""Each state's condition on a ``scans`` row; ``{t}`` is the table's qualifier.  They are
mutually exclusive and, over the stored states, cover every row (tests/outbox/test_states.py)."""


_CASE_ORDER = (
    RowState.DELIVERED,
    RowState.PENDING,
    RowState.HELD,
    RowState.IN_FLIGHT,
    RowState.REJECTED,
    RowState.REMOVED,
    RowState.QUARANTINED,
)
"""The conditions exclude each other, so their order in the CASE only sets its cost: the
delivered rows kept for audit, the bulk of a file, are decided by the first test."""


def _qualifier(table: str) -> str:
    if table and not table.isidentifier():
        raise ValueError(f"not a table name or alias: {table!r}")
    return f"{table}." if table else ""


def row_state(value: str) -> RowState:
    """The :class:`RowState` called ``value``.

    Raises:
        ValueError: no such state (the message lists the known ones).
    """
    try:
        return RowState(value)
    except ValueError:
        known = ", ".join(s.value for s in RowState)
        raise ValueError(f"unknown row state {value!r} (known: {known})") from None


def row_state_where(state: RowState | str, table: str = "") -> str:
    """The SQL condition that a ``scans`` row (aliased ``table``) is in ``state``.

    Raises:
        ValueError: ``state`` is not a row state, or ``table`` not an identifier.
    """
    return "(" + _CONDITIONS[row_state(state)].format(t=_qualifier(table)) + ")"


def row_state_sql(table: str = "") -> str:
    """A SQL expression giving a ``scans`` row's :class:`RowState` value.

    Built from :func:`row_state_where`'s conditions (any order gives the same
    value; :data:`_CASE_ORDER` is the cheapest).  A row
    whose stored state this build does not know (a newer agent wrote it) shows
    as that stored value rather than vanishing from the counts.
    """
    t = _qualifier(table)
    whens = " ".join(f"WHEN {_CONDITIONS[s].format(t=t)} THEN '{s.value}'" for s in _CASE_ORDER)
    return f"(CASE {whens} ELSE {t}state END)"


def backlog_where(table: str = "") -> str:
    """The SQL condition that a ``scans`` row is still owed to the service (:data:`BACKLOG_STATES`)."""
    return (
        "(" + " OR ".join(row_state_where(s, table) for s in RowState if s in BACKLOG_STATES) + ")"
    )


def count_row_states(
    db: sqlite3.Connection, where: str = "1", params: Sequence[object] = ()
) -> dict[str, int]:
    """Rows of ``scans`` matching ``where`` per :class:`RowState` (every state, zeros included).

    Takes any connection to an outbox file (the outbox's reader, ``doctor``'s
    own read-only one), so every count comes from the same expression.
    """
    counts = {s.value: 0 for s in RowState}
    for state, n in db.execute(
        f"SELECT {row_state_sql()}, COUNT(*) FROM scans WHERE {where} GROUP BY 1",  # noqa: S608
        params,
    ):
        counts[str(state)] = counts.get(str(state), 0) + int(n)
    return counts


def backlog_count(counts: Mapping[str, int]) -> int:
    """Rows still owed to the service, from counts per state."""
    return sum(counts.get(s.value, 0) for s in BACKLOG_STATES)


class BillState(enum.StrEnum):
    """Where a bill is.  All but ``open`` and ``default`` follow from its rows' states."""

    OPEN = "open"
    """Taking scans; they are held back from sync until it closes."""
    CLOSED = "closed"
    """Handed to sync; some scans are still owed to the service."""
    DELIVERED = "delivered"
    """Closed, and the service holds every scan."""
    PARTLY_REJECTED = "partly_rejected"
    """Closed and settled, but the service refused one or more scans (dead letters), or
    one or more were quarantined as damaged on disk: the service does not hold them all."""
    EMPTY = "empty"
    """Closed with no scans on it (none taken, or every one taken off again): nothing was sent."""
    DEFAULT = "default"
    """Not opened by anyone: a device's default bill for an action, synced continuously."""


def bill_state(stored: str | None, counts: Mapping[str, int]) -> BillState:
    """A bill's state from ``bills.state`` (``None``: a default bill) and its rows per state."""
    if stored is None:
        return BillState.DEFAULT
    if stored == BillState.OPEN:
        return BillState.OPEN
    if backlog_count(counts):
        return BillState.CLOSED
    if not any(n for s, n in counts.items() if s != RowState.REMOVED):
        return BillState.EMPTY
    if counts.get(RowState.REJECTED, 0) or counts.get(RowState.QUARANTINED, 0):
        return BillState.PARTLY_REJECTED
    return BillState.DELIVERED
