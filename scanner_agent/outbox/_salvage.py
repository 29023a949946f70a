"""Salvage: recover the readable scans still owed from a damaged outbox file.

A file that fails its integrity check is moved aside at start (never deleted),
and a WAL whose replay would drop committed frames is copied aside: either may
hold scans that were acknowledged but never delivered.  :func:`salvage` reads
such a file through a read-only connection (it never writes it, so it also
works on a damaged file still in use), row by row where it must:

* rows come in chunks in seq order, each decoded and checked alone
  (:func:`~scanner_agent.outbox._damage.read_rows`: UTF-8, state, checksum);
* where SQLite cannot read a stretch of the table (a damaged page), the seqs
  after it are probed one by one, then in growing jumps up to the file's
  highest seq, and the stretch is reported as unreadable;
* a scan still owed (``pending`` or ``in_flight``, not removed from its bill)
  that reads back intact goes into the live outbox as pending unless the live
  outbox already holds its ``event_id`` (the service's key): nothing is ever
  duplicated, and running salvage twice recovers nothing the second time.

Then, for the seqs the B-tree could not reach (under a damaged interior page,
or in a stretch the probing skipped), the table-leaf pages are read directly
(:mod:`scanner_agent.outbox._pages`), from the main file (mapped, not read into
memory) and from the committed frames of its WAL (the frames the WAL's repair
would replay: :func:`~scanner_agent.outbox._wal.committed_frames`).  A record
is taken only when its row checksum verifies, so a row whose own bytes are
intact is recovered even when SQLite cannot find it; one that fails its checks
is reported damaged; one without a checksum (written before checksums existed)
is counted, never taken.  Pages may hold stale copies of a row (a page freed
when its freelist is unreadable, the main file's copy of a page the WAL
rewrote), so of several verified versions of one event a delivered one wins,
else the newest (:func:`_precedence`).  A stale owed copy whose delivered
version is itself lost cannot be told from an owed row: it is queued again
under its own event id, which the live outbox skips when it holds it and the
service answers as a duplicate.

Everything else is counted in the :class:`SalvageReport`: delivered and dead
letters skipped, damaged rows (with their bytes in hex), unreadable stretches,
and rows written before checksums existed (taken from the B-tree, unverified).
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scanner_agent.outbox._connect import connect_readonly
from scanner_agent.outbox._damage import (
    DamagedRow,
    RowRead,
    read_rows,
    row_content,
    row_problem,
    scan_columns,
)
from scanner_agent.outbox._models import NewScan
from scanner_agent.outbox._pages import Cell, leaf_cells
from scanner_agent.outbox._wal import committed_frames

__all__ = ["SalvageReport", "SalvageTarget", "salvage", "salvage_rows"]


class SalvageTarget(Protocol):
    """What salvage writes into: the live :class:`~scanner_agent.outbox.Outbox`."""

    @property
    def path(self) -> Path: ...

    def add_salvaged(
        self, scans: Sequence[NewScan], *, dry_run: bool = False
    ) -> tuple[int, int]: ...


_READ_ERRORS = (sqlite3.DatabaseError, UnicodeDecodeError)
"""What reading a damaged file raises: SQLite's errors, and Python's decoding of an error
text or a schema name that quotes damaged bytes."""
_CHUNK = 2000
_PROBE = 512
"""Seqs tried one by one after an unreadable stretch, before jumping further."""
_OWED = ("pending", "in_flight")


@dataclass
class SalvageReport:
    """What a salvage found and did (``queue salvage --json`` prints it)."""

    source: str
    rows_read: int = 0
    """Rows that read back intact (any state)."""
    owed: int = 0
    """Of those, scans still owed to the service (pending or in flight, not removed)."""
    recovered: int = 0
    """Owed scans put into the live outbox as pending."""
    already_held: int = 0
    """Owed scans the live outbox already holds (same event id): not added again."""
    settled: int = 0
    """Rows delivered or dead-lettered in the file: nothing to recover."""
    removed: int = 0
    """Scans taken off their bill in the file: never sent, not recovered."""
    unverified: int = 0
    """Owed scans without a checksum (written before checksums existed): recovered as read."""
    damaged: list[dict[str, Any]] = field(default_factory=list)
    """Rows that failed to decode or verify: seq, problem, bytes in hex. Not recovered."""
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    """Stretches SQLite could not read: after_seq, resumed_at (None: to the end), error."""
    from_pages: int = 0
    """Rows the B-tree could not reach, read from the leaf pages and verified (any state)."""
    pages_unverified: int = 0
    """Rows found only on the leaf pages without a checksum: not taken (cannot be verified)."""
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """One line for logs and alarms."""
        return (
            f"{self.recovered} scans recovered, {self.already_held} already held, "
            f"{len(self.damaged)} damaged rows, {len(self.unreadable)} unreadable stretches "
            f"({self.rows_read} rows read, {self.from_pages} of them from the pages, "
            f"{self.settled} already settled)"
        )


def _max_seq(db: sqlite3.Connection) -> int:
    """The highest seq the file knows of (the table's, else its AUTOINCREMENT counter)."""
    for sql in (
        "SELECT MAX(seq) FROM scans",
        "SELECT seq FROM sqlite_sequence WHERE name = 'scans'",
    ):
        try:
            row = db.execute(sql).fetchone()
        except _READ_ERRORS:
            continue
        if row and isinstance(row[0], int):
            return int(row[0])
    return 0


def salvage_rows(db: sqlite3.Connection, report: SalvageReport) -> Iterator[RowRead]:
    """Every row of ``db``'s scans table that can be read, in seq order, chunk by chunk.

    Unreadable stretches are skipped and recorded in ``report.unreadable``.
    """
    try:
        columns = scan_columns(db)
    except _READ_ERRORS as exc:
        report.unreadable.append({"after_seq": 0, "resumed_at": None, "error": str(exc)})
        return
    if "seq" not in columns:
        report.unreadable.append({"after_seq": 0, "resumed_at": None, "error": "no scans table"})
        return
    top = _max_seq(db)
    start = 1  # the next seq to read; always a lower bound (seq >= start), never "seq > x":
    # seeking past x lands on x's page, which is the damaged one after a failure.
    while True:
        try:
            found = read_rows(db, "seq >= ?", (start,), columns=columns, limit=_CHUNK)
        except _READ_ERRORS:
            # Up to the damage one row at a time, then past it.
            error = ""
            while True:
                try:
                    one = read_rows(db, "seq >= ?", (start,), columns=columns, limit=1)
                except _READ_ERRORS as exc:
                    error = str(exc)
                    break
                if not one.rows and not one.damaged:
                    return
                yield one
                start = _last_seq(one) + 1
            resumed = _probe(db, start - 1, top, columns)
            report.unreadable.append(
                {"after_seq": start - 1, "resumed_at": resumed, "error": error}
            )
            if resumed is None:
                return
            start = max(resumed, start + 1)
            continue
        if not found.rows and not found.damaged:
            return
        yield found
        start = _last_seq(found) + 1


def _last_seq(found: RowRead) -> int:
    return int(max((*(r["seq"] for r in found.rows), *(d.seq for d in found.damaged))))


def _readable_from(db: sqlite3.Connection, seq: int, columns: Sequence[str]) -> int | None:
    """The first seq at or after ``seq`` that reads, or None if the read fails or finds none."""
    try:
        found = read_rows(db, "seq >= ?", (seq,), columns=columns, limit=1)
    except _READ_ERRORS:
        return None
    seqs = [r["seq"] for r in found.rows] + [d.seq for d in found.damaged]
    return seqs[0] if seqs else None


def _probe(db: sqlite3.Connection, after: int, top: int, columns: Sequence[str]) -> int | None:
    """The first seq past an unreadable stretch after ``after`` (None: none up to ``top``).

    Seqs one by one for a while, then jumps that double, then a bisection back
    between the last jump that failed and the first that read.
    """
    failed = after
    seq, step = after + 1, 1
    while seq <= max(top, after + 1):
        found = _readable_from(db, seq, columns)
        if found is not None:
            lo, hi = failed, seq
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _readable_from(db, mid, columns) is None:
                    lo = mid
                else:
                    hi = mid
            return _readable_from(db, hi, columns) if hi != seq else found
        failed = seq
        if seq - after >= _PROBE:
            step *= 2
        seq += step
    return None


def _new_scan(row: dict[str, Any]) -> NewScan:
    return NewScan._make([row.get(f) for f in NewScan._fields])


def salvage(source: Path, target: SalvageTarget, *, dry_run: bool = False) -> SalvageReport:
    """Recover the owed scans of the outbox file ``source`` into ``target`` (see the module).

    ``source`` is only read, through a ``mode=ro`` connection, with its WAL if
    it has one.

    Raises:
        ValueError: ``source`` is ``target``'s own file.
        sqlite3.Error: ``source`` cannot be opened at all (not a database).
    """
    if source.resolve() == target.path.resolve():
        raise ValueError(
            f"{source} is the live outbox itself; salvage reads another file into it "
            "(a copy moved aside, or a copy of a damaged file)"
        )
    report = SalvageReport(str(source), dry_run=dry_run)
    seen: set[int] = set()
    held: set[str] = set()
    db = connect_readonly(source)
    try:
        for found in salvage_rows(db, report):
            seen.update(r["seq"] for r in found.rows)
            seen.update(d.seq for d in found.damaged)
            held.update(str(r.get("event_id")) for r in found.rows)
            _take(found, report, target, dry_run)
        columns = _columns(db, target)
    finally:
        db.close()
    if columns:
        _take(_page_rows(source, columns, seen, held, report), report, target, dry_run)
    return report


def _take(found: RowRead, report: SalvageReport, target: SalvageTarget, dry_run: bool) -> None:
    """Count ``found`` in ``report`` and put its owed scans into ``target``."""
    report.damaged += [
        {"seq": d.seq, "problem": d.problem, "content_hex": d.content.hex()} for d in found.damaged
    ]
    report.rows_read += len(found.rows)
    owed: list[NewScan] = []
    for r in found.rows:
        if r.get("state") not in _OWED:
            report.settled += r.get("state") != "quarantined"
            continue
        if r.get("removed"):
            report.removed += 1
            continue
        report.unverified += r.get("crc") is None
        owed.append(_new_scan(r))
    report.owed += len(owed)
    if owed:
        added, held = target.add_salvaged(owed, dry_run=dry_run)
        report.recovered += added
        report.already_held += held


def _columns(db: sqlite3.Connection, target: SalvageTarget) -> list[str]:
    """The scans table's columns: the file's own, else this build's (its schema unreadable)."""
    try:
        columns = scan_columns(db)
    except _READ_ERRORS:
        columns = []
    if "seq" in columns and "crc" in columns:
        return columns
    live = connect_readonly(target.path)
    try:
        return scan_columns(live)
    finally:
        live.close()


def _page_rows(
    source: Path, columns: list[str], seen: set[int], held: set[str], report: SalvageReport
) -> RowRead:
    """The rows of ``source`` the B-tree did not give, read from its leaf pages and checked.

    ``seen``: the seqs the B-tree read (intact or damaged); ``held``: the event
    ids it read intact.  The file is mapped, not read into memory; its WAL's
    committed frames are read too (the pages SQLite would take from it).
    """
    frames = committed_frames(Path(f"{source}-wal"))
    try:
        with source.open("rb") as f:
            empty = os.fstat(f.fileno()).st_size == 0
            data = b"" if empty else mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        report.unreadable.append({"after_seq": 0, "resumed_at": None, "error": str(exc)})
        return RowRead([], [])
    try:
        cells = leaf_cells(data, len(columns), frames, skip=seen)  # type: ignore[arg-type]
        return _versions(cells, columns, held, report)
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def _precedence(row: dict[str, Any], rank: int) -> tuple[bool, int, bool]:
    """Which of several verified versions of one scan counts: the highest.

    A delivered version always wins: nothing ever makes a delivered scan owed
    again, so an owed version beside it is a stale copy (a page freed, or the
    main file's copy of a page the WAL rewrote).  Otherwise the newest wins
    (``rank``: a later WAL frame is a later version; ``queue retry`` does make
    a dead letter owed again), and between copies of equal rank an owed one
    (re-sending a dead letter once is harmless: the service refuses it again).
    """
    state = row.get("state")
    return state == "delivered", rank, state in _OWED


def _versions(
    cells: Iterable[Cell], columns: list[str], held: set[str], report: SalvageReport
) -> RowRead:
    """The verified rows among ``cells``, one per event id (:func:`_precedence`), and the damaged.

    A seq with no verified version is damaged (its first version's problem
    and bytes); one without a checksum (written before checksums existed) is
    only counted: it cannot be verified, so it is never taken.
    """
    at = columns.index("seq")
    best: dict[str, tuple[tuple[bool, int, bool], dict[str, Any]]] = {}
    bad: dict[int, DamagedRow] = {}
    unverified: set[int] = set()
    for cell in cells:
        if cell.rowid < 1 or cell.values[at] is not None:
            continue  # the seq column is NULL (the rowid's alias) in every scans record
        row = dict(zip(columns, cell.values, strict=True))
        row["seq"] = cell.rowid
        if row.get("crc") is None:
            unverified.add(cell.rowid)
        elif problem := row_problem(row):
            content = row_content(columns, cell.values)
            bad.setdefault(cell.rowid, DamagedRow(cell.rowid, f"page scan: {problem}", content))
        elif (event := str(row["event_id"])) not in held:
            order = _precedence(row, cell.rank)
            if event not in best or order > best[event][0]:
                best[event] = (order, row)
    rows = sorted((r for _, r in best.values()), key=lambda r: int(r["seq"]))
    taken = {r["seq"] for r in rows}
    report.pages_unverified += len(unverified - taken)
    report.from_pages += len(rows)
    return RowRead(rows, [d for seq, d in sorted(bad.items()) if seq not in taken])
