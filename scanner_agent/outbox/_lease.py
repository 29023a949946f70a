"""Delivery: leasing batches to send, and settling them with the service's answers.

Delivery uses leases (Telegraf's buffer contract): :meth:`~OutboxDelivery.lease`
hands out the oldest pending rows under a new ``batch_id``; a retry, even
after a crash, gets the *same* batch id with the *same* rows back, so the
service's idempotency holds.  :meth:`~OutboxDelivery.settle` records the
per-event results; rows leave the backlog only as ``delivered`` or
``rejected`` (dead letter, re-sendable with :meth:`~OutboxDelivery.requeue_rejected`).
Every row a lease reads is checked against its checksum first: a damaged one
is quarantined (``_repair.py``), never sent.

:func:`_lease_rows` is a measured hot path (``docs/performance.md``: a lease
reads its rows and renders their wire JSON in one SQLite step).
"""

# SQL here is assembled only from constant fragments; values are always bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple

from scanner_agent.kernel import OutboxError
from scanner_agent.outbox._batches import EVENT_COLUMNS, IN_BATCH, PENDING, batch_span, unbatch_in
from scanner_agent.outbox._checksum import CHECKED_FIELDS, text_checksum
from scanner_agent.outbox._connect import is_damage_error
from scanner_agent.outbox._damage import DamagedRow, read_rows
from scanner_agent.outbox._ids import uuid7
from scanner_agent.outbox._models import (
    WIRE_FIELDS,
    Batch,
    BatchEvent,
    EventResult,
    SettleSummary,
)
from scanner_agent.outbox._repair import OutboxRepairs
from scanner_agent.outbox._states import SENDABLE, RowState, row_state_where

__all__ = ["OutboxDelivery"]

log = logging.getLogger(__name__)

_DAMAGE_ROUNDS = 20
"""Reads a lease may retry after quarantining what the previous one found damaged."""

_WIRE_EVENT = "json_object(" + ", ".join(f"'{c}', {c}" for c in WIRE_FIELDS) + ")"
"""SQL for one event as :meth:`BatchEvent.to_wire` writes it."""


_CHECK_ROW = f"json_array(seq, crc, state, {', '.join(CHECKED_FIELDS)})"
"""SQL for what a leased row is verified against: seq, the stored checksum, the stored state
(read from the table, whatever an index said), the fields."""


class _StaleIndex(Exception):
    """A lease read rows through an index that disagrees with the table (damaged)."""


class _Lease(NamedTuple):
    """What :func:`_lease_rows` read: event rows and their wire JSON, or the damaged rows."""

    rows: list[list[Any]]
    wire: str
    damaged: list[DamagedRow]


def _lease_rows(db: sqlite3.Connection, sql: str, params: Sequence[object], state: str) -> _Lease:
    """The events selected by ``sql`` (a ``SELECT *`` of scans) and their wire JSON, in one step.

    Every row's checksum is verified (issue 16: a flipped byte was delivered as
    another code).  When a row fails it, or a text is not UTF-8 (which fails the
    whole query), the selected rows are read again one by one
    (:func:`~scanner_agent.outbox._damage.read_rows`) and the damaged ones are
    returned instead of events, for the caller to quarantine before it reads again.
    A row whose stored state is not ``state`` was found through a damaged index:
    :class:`_StaleIndex` is raised.

    Why not ``fetchall()``: each fetched row is one ``sqlite3_step``, and each
    step gives the GIL up and must win it back, which behind a busy event loop
    (gzip, HTTP) costs up to a switch interval per row.  One aggregate query
    instead returns the rows folded into a JSON array (``json.loads`` builds
    the lists in C; text and integers round-trip exactly) and the events
    rendered as a JSON array of :meth:`BatchEvent.to_wire` objects.  SQL does
    not promise the aggregate's input order, so the rows are checked; out of
    order (never seen), they are sorted and the wire array is rendered again
    from them.
    """
    try:
        found = db.execute(
            f"SELECT json_group_array(json_array({EVENT_COLUMNS})), "
            f"json_group_array({_WIRE_EVENT}), json_group_array({_CHECK_ROW}) FROM ({sql})",
            params,
        ).fetchone()
    except sqlite3.OperationalError:  # "Could not decode to UTF-8": find the rows
        damaged = read_rows(db, f"seq IN (SELECT seq FROM ({sql}))", params).damaged
        if not damaged:
            raise
        return _Lease([], "[]", damaged)
    if not found or not found[0]:
        return _Lease([], "[]", [])
    checks = json.loads(found[2])
    if any(c[2] != state for c in checks):
        raise _StaleIndex(f"rows {[c[0] for c in checks if c[2] != state]} are not {state}")
    bad = [c[0] for c in checks if c[1] is not None and c[1] != text_checksum(c[3:])]
    if bad:
        damaged = read_rows(db, f"seq IN ({', '.join('?' * len(bad))})", bad).damaged
        if len(damaged) != len(bad):  # the two reads disagree: never send what failed
            raise OutboxError(f"rows {bad} failed their checksum but read back intact")
        return _Lease([], "[]", damaged)
    rows: list[list[Any]] = json.loads(found[0])
    wire = str(found[1])
    if any(rows[i][0] >= rows[i + 1][0] for i in range(len(rows) - 1)):
        rows.sort(key=itemgetter(0))
        wire = "[" + ",".join(_wire_json(r) for r in rows) + "]"
    return _Lease(rows, wire, [])


def _wire_json(row: Sequence[Any]) -> str:
    """One event row (``EVENT_COLUMNS``) as :meth:`BatchEvent.to_wire` JSON."""
    return _to_json(BatchEvent._make(row).to_wire())


def _fit(rows: Sequence[Sequence[Any]], max_bytes: int) -> int:
    """How many leading events fit in ``max_bytes`` of wire JSON (at least one)."""
    total, keep = 1, 0  # the array's brackets, and a comma before each event but the first
    for r in rows:
        total += len(_wire_json(r).encode()) + 1
        if keep and total > max_bytes:
            break
        keep += 1
    return keep


_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class OutboxDelivery(OutboxRepairs):
    """Leases, settles and the rest of a batch's life; dead letters back to pending."""

    def lease(
        self, limit: int, *, lease_s: float = 60.0, max_bytes: int | None = None
    ) -> Batch | None:
        """Lease the next batch to send, or ``None`` when nothing is due.

        A batch whose lease has expired (its sender crashed, or released it
        after a failure) is handed out again first, with the same id and rows.
        Otherwise the oldest pending rows, up to ``limit`` events whose JSON
        array (``Batch.events_json``) takes at most ``max_bytes`` (at least one
        event, however large), become a new batch.  Removed rows and rows of a
        bill that is still open are never leased (see ``docs/control.md``).
        """
        now = self.clock().timestamp()
        with self.atomic() as db:
            seen: set[int] = set()
            rebuilt = False
            for _ in range(_DAMAGE_ROUNDS):
                try:
                    with self.atomic():  # a savepoint: a try that fails leaves nothing behind
                        batch = self._lease_in(db, now, limit, lease_s, max_bytes)
                except (_StaleIndex, OutboxError) as exc:
                    if rebuilt or not (
                        isinstance(exc, _StaleIndex) or is_damage_error(exc.__cause__)
                    ):
                        raise OutboxError(
                            f"Failed to lease from outbox {str(self.path)!r}: {exc}"
                        ) from exc
                    self._rebuild_indexes(db, str(exc))
                    rebuilt = True
                    continue
                if not isinstance(batch, list):
                    return batch
                if seen & {d.seq for d in batch}:
                    # Quarantined, yet selected again as pending: the partial index over
                    # pending rows is damaged too (it still lists the row).
                    self._rebuild_indexes(db, "a quarantined row was listed as pending")
                seen.update(d.seq for d in batch)
                self._quarantine(db, batch)
            raise OutboxError(
                f"Failed to lease from outbox {str(self.path)!r}: damaged rows found in "
                f"{_DAMAGE_ROUNDS} reads in a row"
            )

    def _lease_in(
        self,
        db: sqlite3.Connection,
        now: float,
        limit: int,
        lease_s: float,
        max_bytes: int | None,
    ) -> Batch | list[DamagedRow] | None:
        """One try of :meth:`lease` in its transaction: the batch, or the damaged rows it met."""
        row = db.execute(
            "SELECT batch_id, attempts, first_seq, last_seq FROM batches "
            "WHERE lease_until <= ? ORDER BY rowid LIMIT 1",
            (now,),
        ).fetchone()
        if row is not None:
            batch_id, attempts = str(row[0]), int(row[1])
            span = (int(row[2]), int(row[3]), batch_id)
            db.execute(
                "UPDATE batches SET lease_until = ?, attempts = attempts + 1 WHERE batch_id = ?",
                (now + lease_s, batch_id),
            )
            found = _lease_rows(
                db, f"SELECT * FROM scans WHERE {IN_BATCH} ORDER BY seq", span, "in_flight"
            )
            if found.damaged:
                return found.damaged
            if found.rows:
                return Batch(
                    batch_id, tuple(map(BatchEvent._make, found.rows)), attempts + 1, found.wire
                )
            # Every row of it was settled some other way: the batch is spent.
            db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
        pending = f"SELECT * FROM scans WHERE {PENDING} AND {SENDABLE} ORDER BY seq LIMIT ?"
        found = _lease_rows(db, pending, (limit,), "pending")
        if found.damaged:
            return found.damaged
        rows, wire = found.rows, found.wire
        if not rows:
            return None
        if max_bytes is not None and len(wire.encode()) > max_bytes:
            # Rare (2,500 cn20 events are about 0.6 MB): keep the events that fit,
            # at least one however large, and render just those.
            found = _lease_rows(db, pending, (_fit(rows, max_bytes),), "pending")
            rows, wire = found.rows, found.wire
        batch_id = uuid7()
        last_seq = int(rows[-1][0])
        db.execute(
            "INSERT INTO batches (batch_id, created_at, lease_until, events, first_seq, "
            "last_seq) VALUES (?, ?, ?, ?, ?, ?)",
            (batch_id, self.now_iso(), now + lease_s, len(rows), int(rows[0][0]), last_seq),
        )
        # Exactly the rows read (by seq, not "every pending row up to the last"): what is
        # marked in flight, and later settled, is what the batch carries, even if an
        # index were to disagree with the table.
        cur = db.execute(
            "UPDATE scans SET state = 'in_flight', batch_id = ?, attempts = attempts + 1 "
            "WHERE seq IN (SELECT value FROM json_each(?)) AND state = 'pending'",
            (batch_id, json.dumps([r[0] for r in rows])),
        )
        if cur.rowcount != len(rows):
            raise _StaleIndex(f"{cur.rowcount} of {len(rows)} leased rows were pending")
        return Batch(batch_id, tuple(map(BatchEvent._make, rows)), 0, wire)

    def settle(self, batch_id: str, results: Mapping[str, EventResult]) -> SettleSummary:
        """Record the service's per-event results for a leased batch.

        ``accepted`` and ``duplicate`` rows become delivered; ``rejected`` rows
        become dead letters with the service's reason.  A batch already settled
        (a late duplicate reply) changes nothing.

        Raises:
            ValueError: ``results`` does not cover exactly the batch's events.
        """
        settled_at = self.now_iso()
        with self._lock, self._without_fsync(), self.atomic() as db:
            # One JSON array instead of a row per step (see _lease_rows).
            span = batch_span(db, batch_id)
            found = db.execute(
                f"SELECT json_group_array(event_id) FROM scans WHERE {IN_BATCH}", span
            ).fetchone()
            ids: list[str] = json.loads(found[0]) if found and found[0] else []
            if set(ids) != set(results):
                missing = len(set(ids) - set(results))
                extra = len(set(results) - set(ids))
                raise ValueError(
                    f"Failed to settle batch {batch_id}: results do not match its events "
                    f"({missing} missing, {extra} unknown)"
                )
            counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
            updates = []
            for event_id in ids:
                res = results[event_id]
                counts[res.status] += 1
                if res.status == "accepted" and res.reason is None:
                    continue  # the common case: marked below, in one statement
                state = RowState.REJECTED if res.status == "rejected" else RowState.DELIVERED
                updates.append((state.value, res.status, res.reason, settled_at, event_id))
            if updates:
                db.executemany(
                    "UPDATE scans SET state = ?, result = ?, reason = ?, settled_at = ? "
                    "WHERE event_id = ?",
                    updates,
                )
            # Whatever is still in flight in this batch was accepted.
            db.execute(
                "UPDATE scans SET state = 'delivered', result = 'accepted', reason = NULL, "
                f"settled_at = ? WHERE {IN_BATCH}",
                (settled_at, *span),
            )
            db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
        return SettleSummary(**counts)

    def release(self, batch_id: str, error: str) -> None:
        """Give a batch back after a failed send; the next lease returns it unchanged."""
        with self.atomic() as db:
            db.execute(
                "UPDATE batches SET lease_until = 0, last_error = ? WHERE batch_id = ?",
                (error[:500], batch_id),
            )

    def unbatch(self, batch_id: str) -> int:
        """Dissolve a batch the service never stored (413): its rows are pending again.

        Returns:
            How many rows went back to pending.
        """
        with self.atomic() as db:
            return unbatch_in(db, batch_id)

    def dead_letter_batch(self, batch_id: str, reason: str) -> int:
        """Move every row of a batch the service refused as a whole to ``rejected``."""
        with self.atomic() as db:
            cur = db.execute(
                "UPDATE scans SET state = 'rejected', result = 'rejected', reason = ?, settled_at = ? "
                f"WHERE {IN_BATCH}",
                (reason, self.now_iso(), *batch_span(db, batch_id)),
            )
            db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
            return cur.rowcount

    def requeue_rejected(self, seqs: Sequence[int] | None = None) -> int:
        """Send dead letters again (all of them, or the given sequence numbers)."""
        with self.atomic() as db:
            base = (
                "UPDATE scans SET state = 'pending', batch_id = NULL, result = NULL, reason = NULL, "
                f"settled_at = NULL WHERE {row_state_where(RowState.REJECTED)}"
            )
            params: list[object] = []
            if seqs is None:
                return db.execute(base, params).rowcount
            total = 0
            for seq in seqs:
                total += db.execute(base + " AND seq = ?", [*params, seq]).rowcount
            return total

    def prune_delivered(self, older_than: datetime, *, limit: int = 1000) -> int:
        """Delete up to ``limit`` delivered rows settled before ``older_than``.

        Small steps keep each transaction short so scanning is never held up.
        """
        with self.atomic() as db:
            cur = db.execute(
                "DELETE FROM scans WHERE seq IN (SELECT seq FROM scans WHERE state = ? "
                "AND settled_at < ? ORDER BY seq LIMIT ?)",
                (RowState.DELIVERED.value, older_than.isoformat(timespec="milliseconds"), limit),
            )
            return cur.rowcount
