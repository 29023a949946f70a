"""Queries: what the outbox holds, for status, ``queue`` commands, metrics and export.

Every query runs on the second, ``query_only`` connection (``_core.py``): WAL
lets it read committed data while the writer commits, so a slow report never
holds up the group commits that scan acknowledgements wait for.  A row whose
text SQLite cannot decode is read alone and left out of :meth:`~OutboxQueries.rows`
(:meth:`~OutboxQueries.export_page` reports it) rather than failing the page.
Refusal aggregates are pruned here too, with the housekeeping of the reports.
"""

# SQL here is assembled only from constant fragments; values are always bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from scanner_agent.kernel import OutboxError
from scanner_agent.outbox._batches import PENDING
from scanner_agent.outbox._core import OutboxCore
from scanner_agent.outbox._damage import DamagedRow, QuarantinedRow
from scanner_agent.outbox._models import OutboxRow, QueueStats, RejectRecord
from scanner_agent.outbox._rejects import REJECT_LAST_AT, prune_rejects, reason_label
from scanner_agent.outbox._schema import current_version
from scanner_agent.outbox._states import (
    RowState,
    count_row_states,
    row_state,
    row_state_sql,
    row_state_where,
)

__all__ = ["OutboxQueries"]

_ROW_COLUMNS = (
    "seq, event_id, code, scheme, raw, symbology, product, action, bill, device_id, source, "
    f"scanned_at, {row_state_sql()}, batch_id, result, reason, attempts, settled_at, removed"
)
"""An :class:`OutboxRow`'s columns; its ``state`` is the row state (``_states``)."""


def _outbox_row(row: Mapping[str, Any]) -> OutboxRow:
    """An :class:`OutboxRow` from a row read by :func:`~scanner_agent.outbox._damage.read_rows`."""
    return OutboxRow(
        **{
            f.name: row["row_state" if f.name == "state" else f.name]
            for f in dataclasses.fields(OutboxRow)
        }
    )


def _row_filter(
    state: str | None, code: str | None, bill: str | None, after_seq: int
) -> tuple[list[str], list[object]]:
    """The WHERE terms and parameters of :meth:`Outbox.rows` and :meth:`Outbox.count_rows`."""
    where = ["seq > ?"]
    params: list[object] = [after_seq]
    if state is not None:
        where.append(row_state_where(row_state(state)))
    if code is not None:
        where.append("code = ?")
        params.append(code)
    if bill is not None:
        where.append("bill = ?")
        params.append(bill)
    return where, params


class OutboxQueries(OutboxCore):
    """Counts, rows, quarantined rows, export pages and refusals, on the read connection."""

    def stats(self) -> QueueStats:
        """Counts per row state (``_states``), oldest undelivered scan, file sizes.

        Each row is counted in exactly one state; ``held`` and ``removed`` are
        also given on their own.
        """
        with self._read_lock:
            self._check_open()
            try:
                counts = count_row_states(self._reader())
            except sqlite3.Error as exc:
                raise self._map(exc, "read") from exc
        # Capture order is seq order, so the oldest undelivered row is the lowest seq of each
        # partial index (scanned_at may step back with the clock; seq never does).
        oldest = min(
            (
                str(r[0])
                for sql in (
                    # INDEXED BY: MIN(seq) would otherwise walk the primary key past
                    # every delivered row kept for audit.
                    "SELECT scanned_at FROM scans WHERE seq = "
                    f"(SELECT MIN(seq) FROM {source} WHERE {state} AND removed = 0)"
                    for source, state in (
                        ("scans INDEXED BY scans_unsent", PENDING),
                        # In-flight rows lie in their batches' seq ranges.
                        (
                            "batches b JOIN scans s ON s.seq BETWEEN b.first_seq AND b.last_seq "
                            "AND s.batch_id = b.batch_id",
                            "s.state = 'in_flight'",
                        ),
                    )
                )
                for r in self._read(sql)
            ),
            default=None,
        )
        rejects = int(self._read("SELECT COALESCE(SUM(count), 0) FROM rejects")[0][0])
        batches = int(self._read("SELECT COUNT(*) FROM batches")[0][0])
        with self._read_lock:
            version = current_version(self._reader())

        def size(p: Path) -> int:
            try:
                return p.stat().st_size
            except OSError:
                return 0

        return QueueStats(
            counts=counts,
            rejects=rejects,
            oldest_pending_at=str(oldest) if oldest is not None else None,
            batches_open=batches,
            file_bytes=size(self.path),
            wal_bytes=size(Path(str(self.path) + "-wal")),
            schema_version=version,
            removed=counts[RowState.REMOVED],
            held=counts[RowState.HELD],
        )

    def rows(
        self,
        *,
        state: str | None = None,
        code: str | None = None,
        bill: str | None = None,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[OutboxRow]:
        """Rows in capture order, optionally filtered; page with ``after_seq``.

        ``state`` is a :class:`RowState` value (``held`` and ``removed`` too).

        Raises:
            ValueError: ``state`` is not a row state.
        """
        where, params = _row_filter(state, code, bill, after_seq)
        try:
            rows = self._read(
                f"SELECT {_ROW_COLUMNS} FROM scans WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
                [*params, limit],
            )
        except OutboxError as exc:
            if not isinstance(exc.__cause__, sqlite3.OperationalError):
                raise
            # A text that is not UTF-8: read the rows one by one and leave the damaged out
            # (export_page reports them; a lease quarantines them).
            found = self._read_rows(" AND ".join(where), params, limit)
            return [_outbox_row(r) for r in found.rows]
        return [OutboxRow(*r) for r in rows]

    def count_rows(
        self, *, state: str | None = None, code: str | None = None, bill: str | None = None
    ) -> int:
        """How many rows :meth:`rows` would list with no limit (``queue ls`` says how many it left out).

        Raises:
            ValueError: ``state`` is not a row state.
        """
        where, params = _row_filter(state, code, bill, 0)
        ((n,),) = self._read(f"SELECT COUNT(*) FROM scans WHERE {' AND '.join(where)}", params)
        return int(n)

    def quarantined(self, *, after_seq: int = 0, limit: int = 1000) -> list[QuarantinedRow]:
        """Rows moved to quarantine as damaged, in seq order, with their bytes as found."""
        return [
            QuarantinedRow(int(seq), str(at), str(problem), bytes(content).hex())
            for seq, at, problem, content in self._read(
                "SELECT seq, found_at, problem, content FROM quarantine WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
        ]

    def export_page(
        self, *, after_seq: int = 0, limit: int = 1000
    ) -> tuple[list[OutboxRow], list[DamagedRow]]:
        """Rows after ``after_seq`` for export, each decoded and checksum-verified alone.

        Unlike :meth:`rows` it never fails on a damaged row: the rows that read
        back intact come first, the damaged ones (not UTF-8, a failed checksum,
        an impossible state, quarantined rows) second, for the caller to report.
        Page on with the larger of the two lists' last seq.
        """
        found = self._read_rows("seq > ?", (after_seq,), limit)
        return [_outbox_row(r) for r in found.rows], found.damaged

    def export_pages(
        self, *, page: int = 1000
    ) -> Iterator[tuple[list[OutboxRow], list[DamagedRow]]]:
        """Every row for export, :meth:`export_page` after page, until none is left: an
        export of a large file holds one page in memory at a time."""
        after = 0
        while True:
            rows, bad = self.export_page(after_seq=after, limit=page)
            if not rows and not bad:
                return
            yield rows, bad
            after = max([r.seq for r in rows] + [b.seq for b in bad])

    def rejects(self, *, limit: int = 1000) -> list[RejectRecord]:
        """Scans refused at intake, newest aggregate last (each with its count and last time)."""
        rows = self._read(
            "SELECT raw, code, reason, verdict, device_id, source, scanned_at, count, "
            f"{REJECT_LAST_AT} FROM rejects ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [RejectRecord(*r) for r in reversed(rows)]

    def last_reject(self) -> RejectRecord | None:
        """The aggregate of the latest refusal at intake (None if none is on record).

        Read once when the daemon starts (the intake keeps the last refusal from then
        on): one pass over at most ``outbox.rejects_max_rows`` rows.
        """
        rows = self._read(
            "SELECT raw, code, reason, verdict, device_id, source, scanned_at, count, "
            f"{REJECT_LAST_AT} AS last FROM rejects ORDER BY last DESC, id DESC LIMIT 1"
        )
        return RejectRecord(*rows[0]) if rows else None

    def reject_reasons(self) -> dict[str, int]:
        """How many scans were refused at intake, per reason label (:func:`reason_label`)."""
        counts: dict[str, int] = {}
        for reason, n in self._read("SELECT reason, SUM(count) FROM rejects GROUP BY reason"):
            label = reason_label(str(reason))
            counts[label] = counts.get(label, 0) + int(n)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def prune_rejects(self, older_than: datetime, *, limit: int = 1000) -> int:
        """Delete up to ``limit`` refusal aggregates last seen before ``older_than``."""
        with self.atomic() as db:
            return prune_rejects(db, older_than, limit)
