"""Leasing one whole bill as a batch, for platforms that take a bill as one upload (码上放心).

:meth:`Outbox.lease` hands out the oldest rows whatever their bill, which is
right for Trace API v1.  码上放心 takes a bill number once: a batch must hold
exactly one bill, and all of its pending rows, or the platform would see the
same number twice with different codes and answer the second 该单据号已存在.

So :func:`lease_bill` takes the bill of the oldest sendable row and leases
every pending row of it, however many (the sink splits large bills into
sub-bills itself); ``batch_size`` only bounds batches of rows whose bill was
never opened (default bills), which the sink refuses anyway.  A bill that
already has a batch in flight is skipped until that batch settles, so two
batches of one bill are never in the air at once.

It writes what :meth:`Outbox.lease` writes (a ``batches`` row with its
``lease_until``; the rows ``in_flight`` with ``batch_id`` and ``attempts``), so
``settle``, ``release`` and ``dead_letter_batch`` of the outbox work on these
batches unchanged, and an expired lease comes back with the same id and rows.
"""

# SQL here is assembled only from constant fragments; values are always bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import logging
import sqlite3

from scanner_agent.outbox._batches import EVENT_COLUMNS, IN_BATCH
from scanner_agent.outbox._ids import uuid7
from scanner_agent.outbox._models import Batch, BatchEvent
from scanner_agent.outbox._outbox import Outbox
from scanner_agent.outbox._states import RowState, row_state_where

__all__ = ["lease_bill"]

log = logging.getLogger(__name__)

# State tests are literals, not bound parameters, so SQLite uses the partial indexes on them.
_SENDABLE_PENDING = row_state_where(RowState.PENDING)
"""A row that may be leased now (not removed, its bill not open): the ``pending`` state."""
_NEXT_BILL = (
    f"SELECT bill FROM scans WHERE {_SENDABLE_PENDING} "
    "AND bill NOT IN (SELECT s.bill FROM batches b JOIN scans s "
    "ON s.seq BETWEEN b.first_seq AND b.last_seq AND s.batch_id = b.batch_id "
    "WHERE s.state = 'in_flight') "
    "ORDER BY seq LIMIT 1"
)
_BILL_ROWS = (
    f"SELECT {EVENT_COLUMNS} FROM scans WHERE {_SENDABLE_PENDING} AND bill = ? ORDER BY seq"
)


def lease_bill(outbox: Outbox, *, lease_s: float, other_limit: int) -> Batch | None:
    """Lease the next batch of one bill, or None when nothing is due.

    An expired batch comes back first, unchanged, as with :meth:`Outbox.lease`;
    one that spans several bills (leased by the other lease, before a switch of
    ``sync.protocol``) is dissolved instead and its rows leased again by bill.
    Otherwise the bill of the oldest pending row (not removed, bill not open,
    no batch of it in flight) is leased: all its pending rows when it is an
    opened bill, at most ``other_limit`` rows when it is a default bill.
    """
    now = outbox.clock().timestamp()
    with outbox.atomic() as db:
        for batch_id, attempts, first_seq, last_seq in db.execute(
            "SELECT batch_id, attempts, first_seq, last_seq FROM batches "
            "WHERE lease_until <= ? ORDER BY rowid",
            (now,),
        ).fetchall():
            events = db.execute(
                f"SELECT {EVENT_COLUMNS} FROM scans WHERE {IN_BATCH} ORDER BY seq",
                (first_seq, last_seq, batch_id),
            ).fetchall()
            if not events:
                # Every row of it was settled some other way: the batch is spent.
                db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
                continue
            if not _whole_bill(db, str(batch_id), {e[5] for e in events}):
                n = outbox.unbatch(str(batch_id))
                log.info(
                    "outbox: batch %s is not one whole bill (leased for another protocol); "
                    "its %d rows go by bill",
                    batch_id,
                    n,
                )
                continue
            db.execute(
                "UPDATE batches SET lease_until = ?, attempts = attempts + 1 WHERE batch_id = ?",
                (now + lease_s, batch_id),
            )
            return Batch(str(batch_id), tuple(BatchEvent(*e) for e in events), int(attempts) + 1)
        first = db.execute(_NEXT_BILL).fetchone()
        if first is None:
            return None
        bill = str(first[0])
        opened = db.execute("SELECT 1 FROM bills WHERE number = ?", (bill,)).fetchone()
        if opened is not None:
            rows = db.execute(_BILL_ROWS, (bill,)).fetchall()
        else:
            rows = db.execute(_BILL_ROWS + " LIMIT ?", (bill, other_limit)).fetchall()
        batch_id = uuid7()
        db.execute(
            "INSERT INTO batches (batch_id, created_at, lease_until, events, first_seq, last_seq) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                batch_id,
                outbox.now_iso(),
                now + lease_s,
                len(rows),
                int(rows[0][0]),
                int(rows[-1][0]),
            ),
        )
        db.execute(
            "UPDATE scans SET state = 'in_flight', batch_id = ?, attempts = attempts + 1 "
            f"WHERE {_SENDABLE_PENDING} AND bill = ? AND seq <= ?",
            (batch_id, bill, int(rows[-1][0])),
        )
        return Batch(batch_id, tuple(BatchEvent(*r) for r in rows), 0)


def _whole_bill(db: sqlite3.Connection, batch_id: str, bills: set[str]) -> bool:
    """Whether an expired batch may go again as it is: one bill, and all of it if opened.

    A batch from :meth:`Outbox.lease` (the protocol was switched while it was
    in flight) can hold part of a bill, or parts of several.  Sent as it is,
    the platform would take the bill number with only those codes, and the
    rest, sent later under the same number, would be answered 该单据号已存在
    and counted as delivered without ever arriving.  Such a batch is
    dissolved instead.  A default (never opened) bill is leased in slices
    anyway, and its scans are refused by the sink.
    """
    if len(bills) != 1:
        return False
    (bill,) = bills
    if db.execute("SELECT 1 FROM bills WHERE number = ?", (bill,)).fetchone() is None:
        return True
    rest = db.execute(
        "SELECT 1 FROM scans WHERE bill = ? AND removed = 0 AND (state = 'pending' "
        "OR (state = 'in_flight' AND batch_id != ?)) LIMIT 1",
        (bill, batch_id),
    ).fetchone()
    return rest is None
