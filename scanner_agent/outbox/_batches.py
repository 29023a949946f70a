"""Batches in the outbox file: which rows a batch holds, and dissolving one.

A batch (``batches`` row) is the unit a lease hands out and a settle closes;
its rows are ``in_flight`` with its ``batch_id``, between its ``first_seq``
and ``last_seq``.  :data:`IN_BATCH` selects them through the primary key, so
a batch is found in a range of the table, not by a scan of it.  Used by the
lease and settle (``_lease.py``), the bill lease (``_bill_lease.py``) and the
quarantine, which dissolves a batch that held a damaged row (``_repair.py``).
"""

# SQL here is assembled only from constant fragments; values are always bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3

from scanner_agent.outbox._models import BatchEvent

__all__ = ["EVENT_COLUMNS", "IN_BATCH", "PENDING", "batch_span", "unbatch_in"]

EVENT_COLUMNS = ", ".join(BatchEvent._fields)
"""A :class:`BatchEvent`'s columns, in its field order."""
PENDING = "state = 'pending'"
"""Written as a literal (not a bound parameter) so SQLite can use the partial index on it."""
IN_BATCH = "seq BETWEEN ? AND ? AND batch_id = ? AND state = 'in_flight'"
"""A batch's rows: a range of the primary key (the batch's first and last seq), then its id.
Parameters: first_seq, last_seq, batch_id (see :func:`batch_span`)."""


def batch_span(db: sqlite3.Connection, batch_id: str) -> tuple[int, int, str]:
    """The parameters of :data:`IN_BATCH` for ``batch_id`` (an empty range if unknown)."""
    row = db.execute(
        "SELECT first_seq, last_seq FROM batches WHERE batch_id = ?", (batch_id,)
    ).fetchone()
    if row is None:
        return (0, -1, batch_id)
    return (int(row[0]), int(row[1]), batch_id)


def unbatch_in(db: sqlite3.Connection, batch_id: str) -> int:
    """Dissolve a batch in the caller's transaction: its rows are pending again; how many."""
    cur = db.execute(
        f"UPDATE scans SET state = 'pending', batch_id = NULL WHERE {IN_BATCH}",
        batch_span(db, batch_id),
    )
    db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
    return int(cur.rowcount)
