"""The write path: scans committed in groups, refused scans kept for audit.

Writes are grouped: :meth:`~OutboxWriter.enqueue_many` commits a whole group
of scans in one transaction (the daemon's group committer gathers them), so
durability costs one fsync per group, not per scan.  The common group (valid
scans, none a duplicate) is a single autocommit ``INSERT``
(:meth:`~OutboxWriter._enqueue_one_statement`): begin, every row and the
commit's fsync in one SQLite step.  That fast path and :func:`_all_queued`
are the measured hot path of the whole agent (``bench/ingest.py``,
``docs/performance.md``); everything else here is the slow path for groups
with duplicates or refusals.

Disk full and the free-space reserve raise
:class:`~scanner_agent.kernel.OutboxFullError` before anything is written.
Scans recovered from another file (salvage) come in through
:meth:`~OutboxWriter.add_salvaged`, keyed by event id.
"""

# SQL here is assembled only from constant fragments; values are always bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import get_args, get_type_hints

from scanner_agent.kernel import OutboxError
from scanner_agent.outbox._checksum import flat_params
from scanner_agent.outbox._core import OutboxCore
from scanner_agent.outbox._models import EnqueueResult, EnqueueStatus, NewScan, RejectRecord
from scanner_agent.outbox._rejects import record_rejects
from scanner_agent.outbox._salvage import SalvageReport, salvage
from scanner_agent.sqlrows import NULL, max_rows, select_list, size_class, values_clause

__all__ = ["ROWS_PER_STATEMENT", "OutboxWriter", "insert_sql"]

log = logging.getLogger(__name__)

_WIDTH = len(NewScan._fields) + 1
"""Parameters per inserted row: a :class:`NewScan`'s fields, then its checksum."""
ROWS_PER_STATEMENT = max_rows(_WIDTH)
"""Rows per multi-row INSERT: 1,984 of 16 values, within SQLite's parameter limit, and more
than ``outbox.commit_max_rows`` (1,024 by default), so a full group is still one statement."""


def _group_params(scans: Sequence[NewScan]) -> tuple[int, list[object]]:
    """The size class for ``scans`` and their parameters with checksums, padded (see sqlrows)."""
    size = size_class(len(scans))
    params = flat_params(scans)
    params += [NULL] * (_WIDTH * (size - len(scans)))
    return size, params


@functools.cache
def insert_sql(rows: int, reject_duplicates: bool) -> str:
    """One INSERT for ``rows`` VALUES rows, each a :class:`NewScan`'s fields in order and its checksum.

    Each scan's tuple and checksum (:func:`~scanner_agent.outbox._checksum.flat_params`) is bound as one flat list in a size class padded with
    empty rows, its ``None`` fields as ``''`` turned back into NULL by the
    statement (:mod:`scanner_agent.sqlrows`).  The duplicate
    check is the unique index on (code, bill, action, dup_guard): ``dup_guard``
    0 makes a scan conflict with an earlier one of the same code, bill and
    action; NULL (the check off) never conflicts.  The VALUES filter also lets
    an INSERT … SELECT carry an upsert clause.
    """
    names = (*NewScan._fields, "crc")
    cols = select_list(len(names), NULLABLE_SCAN_FIELDS)
    guard = "0" if reject_duplicates else "NULL"
    return (
        f"INSERT INTO scans ({', '.join(names)}, dup_guard) SELECT {cols}, {guard} "
        f"FROM {values_clause(rows, len(names))} ON CONFLICT DO NOTHING"
    )


NULLABLE_SCAN_FIELDS = frozenset(
    i
    for i, name in enumerate(NewScan._fields)
    if type(None) in get_args(get_type_hints(NewScan)[name])
)
"""Positions of the :class:`NewScan` fields that may be ``None`` (an empty text means absent)."""


def _all_queued(scans: Sequence[NewScan], first_seq: int) -> list[EnqueueResult]:
    """Results for scans that all went in, numbered from ``first_seq``.

    Built on the writer thread while it holds the GIL, once per scan: hence
    ``_make`` (``tuple.__new__``) rather than the named tuple's Python-level ``__new__``.
    """
    make, queued = EnqueueResult._make, EnqueueStatus.QUEUED
    return [make((queued, s.event_id, seq)) for seq, s in enumerate(scans, first_seq)]


class OutboxWriter(OutboxCore):
    """Group commits of scans, with their refusals; scans recovered by salvage."""

    def enqueue_many(
        self,
        scans: Sequence[NewScan],
        rejects: Sequence[RejectRecord] = (),
        *,
        reject_duplicates: bool = True,
    ) -> list[EnqueueResult]:
        """Commit a group of scans (and refused scans for audit) in one transaction.

        With ``reject_duplicates`` a code already held for the same bill and
        action (in the file or earlier in this group) is not queued again; its
        result says ``DUPLICATE`` and it is recorded among the rejects.

        Returns:
            One result per scan, in order, valid only because COMMIT returned.

        Raises:
            OutboxFullError: disk full or reserve reached; nothing was written.
            OutboxError: any other storage failure; nothing was written, except
                when reading back a group that held a duplicate fails after
                its new scans committed (they are queued and will be sent).
        """
        if not scans and not rejects:
            return []
        self._space_for(scans=bool(scans))
        if not scans and not self._refusals_room:
            self.refusals_dropped += len(rejects)
            return []
        if scans and not rejects and len(scans) <= ROWS_PER_STATEMENT:
            fast = self._enqueue_one_statement(scans, reject_duplicates)
            if fast is not None:
                return fast
        refused: list[RejectRecord] = list(rejects)
        results: list[EnqueueResult] = []
        with self.atomic() as db:
            for start in range(0, len(scans), ROWS_PER_STATEMENT):
                chunk = scans[start : start + ROWS_PER_STATEMENT]
                results += self._insert_chunk(db, chunk, refused, reject_duplicates)
            self._record_rejects(db, refused)
        return results

    def _enqueue_one_statement(
        self, scans: Sequence[NewScan], reject_duplicates: bool
    ) -> list[EnqueueResult] | None:
        """The common group: valid scans only, all new, in one autocommit INSERT.

        Why one statement and no explicit transaction: every call into SQLite
        gives up the GIL, and while the event loop is busy parsing the next
        reads each one costs up to a GIL switch interval to win back.  A lone
        INSERT in autocommit mode is its own transaction (atomic, and durable
        at ``synchronous=FULL``): begin, every row, and the commit's fsync
        happen in a single ``sqlite3_step``.  With one writer, the rows of one
        statement get consecutive sequence numbers ending at ``lastrowid``.

        Returns ``None``, with nothing written, when a transaction is already
        open (the caller's atomic block must hold the rows).  When some scans
        turned out to be duplicates, the new ones are already committed; the
        rest is settled by :meth:`_settle_duplicates`.
        """
        with self._lock:
            self._check_open()
            if self._depth:
                return None
            n = len(scans)
            try:
                rows, params = _group_params(scans)
                cur = self._db.execute(insert_sql(rows, reject_duplicates), params)
            except sqlite3.Error as exc:
                raise self._map(exc, "write") from exc
            inserted, last = cur.rowcount, cur.lastrowid
            if inserted == n and last is not None:
                return _all_queued(scans, last - n + 1)
            return self._settle_duplicates(scans)

    def _settle_duplicates(self, scans: Sequence[NewScan]) -> list[EnqueueResult]:
        """Results for a group already committed with some duplicates skipped.

        The new scans are durable at this point, so what follows must not turn
        into an error for them: the answers come from reads (which a full disk
        or a busy writer does not stop), and only the audit record of the
        refused duplicates is written, in a transaction of its own.  Should
        that write fail, it is logged and the answers still stand.
        """
        refused: list[RejectRecord] = []
        try:
            results = self._results_after_insert(self._db, scans, refused)
        except sqlite3.Error as exc:
            raise self._map(exc, "read back a group") from exc
        try:
            with self.atomic() as db:
                self._record_rejects(db, refused)
        except OutboxError as exc:
            log.error(
                "outbox %s: %d duplicate scans refused but not kept for audit: %s",
                self.path,
                len(refused),
                exc,
            )
        return results

    def _insert_chunk(
        self,
        db: sqlite3.Connection,
        chunk: Sequence[NewScan],
        refused: list[RejectRecord],
        reject_duplicates: bool,
    ) -> list[EnqueueResult]:
        """Insert one chunk in a single statement inside the caller's transaction."""
        n = len(chunk)
        rows, params = _group_params(chunk)
        cur = db.execute(insert_sql(rows, reject_duplicates), params)
        if cur.rowcount == n and cur.lastrowid is not None:
            return _all_queued(chunk, cur.lastrowid - n + 1)
        return self._results_after_insert(db, chunk, refused)

    @staticmethod
    def _results_after_insert(
        db: sqlite3.Connection, chunk: Sequence[NewScan], refused: list[RejectRecord]
    ) -> list[EnqueueResult]:
        """Which scans of an inserted chunk went in, and which were duplicates (slow path).

        A scan went in when its event id is in the file; any other was skipped
        by ON CONFLICT, and its result names the row it duplicates.
        """
        seqs: dict[str, int] = {}
        for start in range(0, len(chunk), 900):
            part = chunk[start : start + 900]
            seqs.update(
                db.execute(
                    "SELECT event_id, seq FROM scans WHERE event_id IN ("
                    + ", ".join("?" * len(part))
                    + ")",
                    [s.event_id for s in part],
                ).fetchall()
            )
        results: list[EnqueueResult] = []
        for s in chunk:
            seq = seqs.get(s.event_id)
            if seq is not None:
                results.append(EnqueueResult(EnqueueStatus.QUEUED, s.event_id, seq))
                continue
            row = db.execute(
                "SELECT seq FROM scans WHERE code = ? AND bill = ? AND action = ? "
                "AND dup_guard = 0",
                (s.code, s.bill, s.action),
            ).fetchone()
            results.append(
                EnqueueResult(EnqueueStatus.DUPLICATE, s.event_id, int(row[0]) if row else None)
            )
            refused.append(
                RejectRecord(
                    raw=s.raw,
                    code=s.code,
                    reason="duplicate scan",
                    verdict="duplicate",
                    device_id=s.device_id,
                    source=s.source,
                    scanned_at=s.scanned_at,
                )
            )
        return results

    def _record_rejects(self, db: sqlite3.Connection, refused: Sequence[RejectRecord]) -> None:
        """Keep refused scans (invalid or duplicate) for audit, aggregated and capped.

        Not written, only counted, when the last space check found less than
        twice the reserve (:meth:`_space_for`).
        """
        if not self._refusals_room:
            self.refusals_dropped += len(refused)
            return
        record_rejects(db, refused, self.rejects_max_rows)

    def add_salvaged(self, scans: Sequence[NewScan], *, dry_run: bool = False) -> tuple[int, int]:
        """Queue scans recovered from another outbox file, unless already held; (added, held).

        The ``event_id`` is the key: a scan whose id this outbox holds (in any
        state, delivered included) is not added again, so salvaging twice adds
        nothing.  Added scans are pending; the duplicate check is off for them
        (a code scanned again since is a second capture, and the service keys
        on the event id).  ``dry_run`` counts without writing.
        """
        unique = list({s.event_id: s for s in scans}.values())
        with self.atomic() as db:
            held: set[str] = set()
            for start in range(0, len(unique), 900):
                part = [s.event_id for s in unique[start : start + 900]]
                held.update(
                    str(r[0])
                    for r in db.execute(
                        f"SELECT event_id FROM scans WHERE event_id IN ({', '.join('?' * len(part))})",
                        part,
                    )
                )
            new = [s for s in unique if s.event_id not in held]
            if not dry_run:
                for start in range(0, len(new), ROWS_PER_STATEMENT):
                    self._insert_chunk(
                        db, new[start : start + ROWS_PER_STATEMENT], [], reject_duplicates=False
                    )
        return len(new), len(held)

    def salvage(self, source: str | Path, *, dry_run: bool = False) -> SalvageReport:
        """Recover the readable scans still owed from another outbox file (see ``_salvage``).

        Raises:
            ValueError: ``source`` is this outbox's own file.
            OutboxError: ``source`` cannot be read at all (not a database), or
                writing the recovered scans here failed.
        """
        try:
            return salvage(Path(source), self, dry_run=dry_run)
        except sqlite3.Error as exc:
            raise OutboxError(f"Failed to salvage {str(source)!r}: {exc}") from exc
