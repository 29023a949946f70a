"""The outbox: a SQLite file that holds every accepted scan until delivered.

Design (see docs/outbox.md):

* WAL journal with ``synchronous=FULL``: a COMMIT that returned is on disk and
  survives power loss, so a good-read signal given after it is a promise kept.
* Writes are grouped: :meth:`Outbox.enqueue_many` commits a whole group of
  scans in one transaction (the daemon's group committer gathers them; the
  common group is a single autocommit INSERT), so durability costs one fsync
  per group, not per scan.
* Delivery uses leases (Telegraf's buffer contract): :meth:`lease` hands out
  the oldest pending rows under a new ``batch_id``; a retry, even after a
  crash, gets the *same* batch id with the *same* rows back, so the service's
  idempotency holds.  :meth:`settle` records per-event results; rows leave
  the backlog only as ``delivered`` or ``rejected`` (dead letter, re-sendable).
* Disk full and a free-space reserve raise :class:`OutboxFullError` before
  anything is written; a file that fails ``PRAGMA quick_check`` at open is
  moved aside (never deleted) and a fresh one started, with an alarm.

The class is synchronous and does its own locking; the daemon calls it from a
single dedicated thread so the event loop never blocks on fsync.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import logging
import os
import shutil
import sqlite3
import struct
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, get_args, get_type_hints

from scanner_agent.kernel import Clock, OutboxCorruptError, OutboxError, OutboxFullError, utc_now
from scanner_agent.outbox._bill_store import BillStore
from scanner_agent.outbox._checksum import CHECKED_FIELDS, flat_params, text_checksum
from scanner_agent.outbox._connect import (
    connect_reader,
    connect_readonly,
    connect_writer,
    is_busy,
    is_damage,
    is_damage_error,
    is_full,
    quick_check,
)
from scanner_agent.outbox._damage import (
    DamagedRow,
    QuarantinedRow,
    RowRead,
    quarantine,
    read_rows,
    schema_problem,
)
from scanner_agent.outbox._file import (
    DIR_MODE,
    check_outbox_path,
    create_outbox_file,
    mark_outbox,
    tighten_modes,
)
from scanner_agent.outbox._ids import uuid7
from scanner_agent.outbox._models import (
    WIRE_FIELDS,
    Batch,
    BatchEvent,
    EnqueueResult,
    EnqueueStatus,
    EventResult,
    NewScan,
    OutboxRow,
    QueueStats,
    RejectRecord,
    SettleSummary,
    WalCheckpoint,
)
from scanner_agent.outbox._rejects import (
    DEFAULT_REJECTS_MAX_ROWS,
    REJECT_LAST_AT,
    prune_rejects,
    reason_label,
    record_rejects,
)
from scanner_agent.outbox._salvage import SalvageReport, salvage
from scanner_agent.outbox._schema import SCHEMA_VERSION, current_version, migrate
from scanner_agent.outbox._states import (
    SENDABLE,
    RowState,
    count_row_states,
    row_state,
    row_state_sql,
    row_state_where,
)
from scanner_agent.outbox._wal import WalReport, inspect_wal, repaired_copy
from scanner_agent.sqlrows import NULL, max_rows, select_list, size_class, values_clause

__all__ = [
    "Outbox",
]

log = logging.getLogger(__name__)

_WIDTH = len(NewScan._fields) + 1
"""Parameters per inserted row: a :class:`NewScan`'s fields, then its checksum."""
_ROWS_PER_STATEMENT = max_rows(_WIDTH)
"""Rows per multi-row INSERT: 1,984 of 16 values, within SQLite's parameter limit, and more
than ``outbox.commit_max_rows`` (1,024 by default), so a full group is still one statement."""


def _group_params(scans: Sequence[NewScan]) -> tuple[int, list[object]]:
    """The size class for ``scans`` and their parameters with checksums, padded (see sqlrows)."""
    size = size_class(len(scans))
    params = flat_params(scans)
    params += [NULL] * (_WIDTH * (size - len(scans)))
    return size, params


@functools.cache
def _insert_sql(rows: int, reject_duplicates: bool) -> str:
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

_ROW_COLUMNS = (
    "seq, event_id, code, scheme, raw, symbology, product, action, bill, device_id, source, "
    f"scanned_at, {row_state_sql()}, batch_id, result, reason, attempts, settled_at, removed"
)
"""An :class:`OutboxRow`'s columns; its ``state`` is the row state (``_states``)."""
_EVENT_COLUMNS = ", ".join(BatchEvent._fields)
"""A :class:`BatchEvent`'s columns, in its field order."""
_PENDING = "state = 'pending'"
"""Written as a literal (not a bound parameter) so SQLite can use the partial index on it."""
_IN_BATCH = "seq BETWEEN ? AND ? AND batch_id = ? AND state = 'in_flight'"
"""A batch's rows: a range of the primary key (the batch's first and last seq), then its id.
Parameters: first_seq, last_seq, batch_id (see :meth:`Outbox._batch_span`)."""
_SENDABLE = SENDABLE
"""Pending rows that may be leased: not removed, and not held back by an open bill."""


def _all_queued(scans: Sequence[NewScan], first_seq: int) -> list[EnqueueResult]:
    """Results for scans that all went in, numbered from ``first_seq``.

    Built on the writer thread while it holds the GIL, once per scan: hence
    ``_make`` (``tuple.__new__``) rather than the named tuple's Python-level ``__new__``.
    """
    make, queued = EnqueueResult._make, EnqueueStatus.QUEUED
    return [make((queued, s.event_id, seq)) for seq, s in enumerate(scans, first_seq)]


_DAMAGE_ROUNDS = 20
"""Reads a lease may retry after quarantining what the previous one found damaged."""


def _rename_no_replace(src: Path, dst: Path) -> bool:
    """Rename ``src`` to ``dst`` unless ``dst`` exists; whether it was renamed.

    ``os.replace`` would overwrite ``dst``; a hard link fails instead, even if
    another process takes the name between a check and the rename, and the old
    name goes only once the new one holds the file.  On a filesystem without
    hard links a check before the rename does the same, short of that race.
    """
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError:
        if dst.exists() or dst.is_symlink():
            return False
        os.rename(src, dst)
        return True
    os.unlink(src)
    return True


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
            f"SELECT json_group_array(json_array({_EVENT_COLUMNS})), "
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
    """One event row (``_EVENT_COLUMNS``) as :meth:`BatchEvent.to_wire` JSON."""
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


def _outbox_row(row: Mapping[str, Any]) -> OutboxRow:
    """An :class:`OutboxRow` from a row read by :func:`~scanner_agent.outbox._damage.read_rows`."""
    return OutboxRow(
        **{
            f.name: row["row_state" if f.name == "state" else f.name]
            for f in dataclasses.fields(OutboxRow)
        }
    )


_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class Outbox:
    """An open outbox file.  Use :meth:`open`; close with :meth:`close`."""

    def __init__(
        self,
        path: Path,
        db: sqlite3.Connection,
        *,
        min_free_bytes: int = 0,
        rejects_max_rows: int = DEFAULT_REJECTS_MAX_ROWS,
        readonly: bool = False,
        clock: Clock = utc_now,
    ) -> None:
        self.path = path
        self.clock = clock
        """Where every time the outbox writes comes from (lease deadlines, settle and
        quarantine times, bill times): the real clock, or a test's."""
        self.readonly = readonly
        """Opened by :meth:`open_readonly`: ``db`` is a ``mode=ro`` connection, writes fail."""
        self.min_free_bytes = min_free_bytes
        """Free-space reserve on the outbox's filesystem; below it scans are refused, and
        below twice it refusals are no longer recorded (they never eat into the reserve)."""
        self.rejects_max_rows = rejects_max_rows
        """Cap on the ``rejects`` table's rows (aggregates); the oldest go first."""
        self.refusals_dropped = 0
        """Refusals not recorded since open because free space was below twice the reserve."""
        self._refusals_room = True
        """Whether the last space check left room for refusals (see :meth:`_space_for`)."""
        self.alarms: list[str] = []
        """Loud problems found at open (e.g. a corrupt file moved aside), for status and logs."""
        self._db = db
        self._lock = threading.RLock()
        self._reader_db: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._depth = 0
        self._closed = False
        self._changes_at_checkpoint = -1
        """The writer's ``total_changes`` when :meth:`checkpoint` last ran (-1: never)."""
        self._quarantined: dict[int, str] = {}
        """Rows quarantined since open, and why (for the alarm)."""
        self._quarantine_alarm: str | None = None

    # -- lifecycle ---------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        min_free_bytes: int = 0,
        rejects_max_rows: int = DEFAULT_REJECTS_MAX_ROWS,
        clock: Clock = utc_now,
    ) -> Outbox:
        """Open (creating, checking and migrating as needed) the outbox at ``path``.

        A file that is not a database or fails ``PRAGMA quick_check`` is renamed
        to ``<name>.corrupt-<UTC time>`` (plus a counter if that name is taken;
        see :meth:`_move_aside`) together with its WAL, and a fresh file is
        started, so a damaged disk never turns into a crash loop.  The check
        runs through a read-only connection (:meth:`_quick_check_untouched`),
        so the file and its WAL are moved aside exactly as they were found.

        Raises:
            OutboxError: the directory cannot be created or the file opened.
        """
        p = Path(path)
        try:
            p.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(
                f"Failed to create outbox directory {str(p.parent)!r}: {exc}"
            ) from exc
        check_outbox_path(p)  # before a byte is written: no symlink, no foreign database
        create_outbox_file(p)
        alarms: list[str] = []
        damaged_wal = cls._keep_damaged_wal(p, clock)
        try:
            db = cls._connect_checked(p)
        except OutboxCorruptError as exc:
            moved = cls._move_aside(p, clock)
            alarm = f"outbox {p} failed its integrity check ({exc}); moved aside to {moved} and started a new one"
            log.error("ALARM: %s", alarm)
            alarms.append(alarm)
            create_outbox_file(p)
            db = cls._connect_checked(p)
        tighten_modes(p)
        outbox = cls(
            p, db, min_free_bytes=min_free_bytes, rejects_max_rows=rejects_max_rows, clock=clock
        )
        outbox.alarms.extend(alarms)
        try:
            applied = migrate(db, clock)
            mark_outbox(db)
        except sqlite3.Error as exc:
            db.close()
            raise OutboxError(f"Failed to migrate outbox {str(p)!r}: {exc}") from exc
        if applied:
            log.info("outbox %s: applied schema migrations %s", p, applied)
        outbox._check_pending_index()
        if damaged_wal is not None:
            outbox._salvage_damaged_wal(*damaged_wal)
        return outbox

    def _check_pending_index(self) -> None:
        """Rebuild the index of pending rows if it disagrees with the table (at open).

        ``quick_check`` checks each index's structure, not that it lists the
        rows it should: a pending row missing from it would never be leased, in
        silence.  Counting the pending rows through the index and through the
        table costs one pass over the table, as ``quick_check`` itself does.
        """
        try:
            (listed,) = self._db.execute(
                "SELECT COUNT(*) FROM scans INDEXED BY scans_unsent WHERE state = 'pending'"
            ).fetchone()
            (stored,) = self._db.execute(
                "SELECT COUNT(*) FROM scans NOT INDEXED WHERE state = 'pending'"
            ).fetchone()
            if listed != stored:
                with self.atomic() as db:
                    self._rebuild_indexes(
                        db, f"it listed {listed} pending rows, the table holds {stored}"
                    )
        except (sqlite3.Error, OutboxError) as exc:
            log.error("outbox %s: could not check the index of pending rows: %s", self.path, exc)

    @staticmethod
    def _keep_damaged_wal(p: Path, clock: Clock) -> tuple[WalReport, Path] | None:
        """Check ``p``'s WAL before SQLite replays it; on damage, copy both aside first.

        SQLite replays a WAL up to the first frame whose checksum fails and
        drops every frame after it in silence, committed ones too
        (:mod:`scanner_agent.outbox._wal`).  When committed frames would be
        dropped, the file and its WAL are copied, as found, to
        ``<name>.wal-damaged-<UTC time>`` (and ``-wal``) before anything opens
        them, and the report and the copy are returned for
        :meth:`_salvage_damaged_wal`.  A WAL that cannot be read is left to
        SQLite (logged): this check must never stop the outbox from opening.
        """
        wal = Path(f"{p}-wal")
        try:
            report = inspect_wal(wal)
        except (OSError, ValueError, struct.error) as exc:
            log.warning("outbox %s: could not check the WAL: %s", p, exc)
            return None
        if report is None or not report.damaged:
            return None
        stamp = clock().strftime("%Y%m%dT%H%M%SZ")
        for n in itertools.count():
            aside = p.with_name(f"{p.name}.wal-damaged-{stamp}" + (f".{n}" if n else ""))
            if not (aside.exists() or Path(f"{aside}-wal").exists()):
                break
        try:
            shutil.copyfile(p, aside)
            shutil.copyfile(wal, Path(f"{aside}-wal"))
        except OSError as exc:
            log.error(
                "ALARM: outbox %s: damaged WAL (%s) could not be copied aside: %s", p, report, exc
            )
            return None
        return report, aside

    def _salvage_damaged_wal(self, report: WalReport, aside: Path) -> None:
        """Recover the scans the dropped WAL frames held; raise the alarm saying what happened.

        A copy of the file is opened with a copy of the WAL whose checksum chain
        is recomputed (:func:`~scanner_agent.outbox._wal.repaired_copy`), so SQLite
        replays every committed frame, the damaged one included; salvage then
        verifies every row on its own checksum before taking it, and takes only
        scans this file does not hold (by event id).
        """
        outcome = ""
        try:
            with tempfile.TemporaryDirectory(dir=self.path.parent, prefix=".wal-salvage-") as tmp:
                copy = Path(tmp) / "outbox.db"
                shutil.copyfile(aside, copy)
                repaired_copy(Path(f"{aside}-wal"), report, Path(f"{copy}-wal"))
                result = salvage(copy, self)
            outcome = f"recovered from the dropped frames: {result.summary()}"
        except (OSError, ValueError, sqlite3.Error, OutboxError) as exc:
            outcome = f"recovering from the dropped frames failed ({exc}); run scanner-agent queue salvage {aside}"
        if report.stranded_commits:
            what = (
                f"damaged at frame {report.broken_at} of {report.frames}: SQLite would have "
                f"dropped {report.stranded} frames holding {report.stranded_commits} committed "
                "transactions"
            )
        else:
            what = (
                f"cut short: the writer had committed {report.committed} frames, the WAL holds "
                f"{report.kept} (the rest is gone from the disk)"
            )
        alarm = (
            f"outbox {self.path}: the WAL left by an unclean stop was {what}; file and WAL "
            f"copied to {aside} and {aside}-wal; {outcome}"
        )
        log.error("ALARM: %s", alarm)
        self.alarms.append(alarm)

    @classmethod
    def open_readonly(cls, path: str | Path, *, clock: Clock = utc_now) -> Outbox:
        """Open an existing outbox for queries only, never changing the file.

        For tools that look at a live daemon's file (``scanner-agent queue
        stats``): unlike :meth:`open` it creates no file, runs no migrations and
        never moves a file aside, so a look can never alter what the daemon
        holds.  It reads through a ``mode=ro`` connection, which sees every
        commit of the daemon (WAL) but takes no part in checkpoints.  As for any
        reader, SQLite creates the empty ``-wal`` and ``-shm`` companions of a
        WAL file that has none when the directory is writable; the database
        file itself is untouched.  The one connection serves as writer and
        reader: a write method fails with SQLite's "attempt to write a readonly
        database", and :meth:`close` skips its checkpoint (one through a
        read-only connection is an error).

        Raises:
            OutboxError: no such file, not an outbox, or a schema version other
                than this build's (the queries are written for it; only
                :meth:`open` migrates).
        """
        p = Path(path)
        if not p.is_file():
            raise OutboxError(f"Failed to open outbox {str(p)!r}: no such file")
        problem = ""
        try:
            reader = connect_readonly(p)
        except sqlite3.Error as exc:
            raise OutboxError(f"Failed to open outbox {str(p)!r} read-only: {exc}") from exc
        try:
            version = current_version(reader)
        except sqlite3.Error as exc:
            reader.close()
            raise OutboxError(f"Failed to open outbox {str(p)!r} read-only: {exc}") from exc
        if version == 0:
            problem = "not an outbox (no schema version)"
        elif version < SCHEMA_VERSION:
            problem = f"schema v{version}, older than v{SCHEMA_VERSION} (the agent migrates it when it starts)"
        elif version > SCHEMA_VERSION:
            problem = f"schema v{version}, written by a newer scanner-agent (this one reads v{SCHEMA_VERSION})"
        if problem:
            reader.close()
            raise OutboxError(f"Failed to open outbox {str(p)!r} read-only: {problem}")
        return cls(p, reader, readonly=True, clock=clock)

    @staticmethod
    def _connect_checked(p: Path) -> sqlite3.Connection:
        """A read-write connection to ``p``, checked, in WAL mode with ``synchronous=FULL``.

        Raises:
            OutboxCorruptError: ``p`` is damaged or not a database.
            OutboxFullError: the disk is full.
            OutboxError: it cannot be opened (locked, no permission, an I/O error).
        """
        checked = Outbox._quick_check_untouched(p)
        try:
            db = connect_writer(p)
        except sqlite3.Error as exc:
            raise OutboxError(f"Failed to open outbox {str(p)!r}: {exc}") from exc
        try:
            if not checked and (problem := quick_check(db) or schema_problem(db)):
                raise OutboxCorruptError(problem)
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise OutboxError(f"Failed to switch outbox {str(p)!r} to WAL: got {mode!r}")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            db.close()
            if is_full(exc):
                raise OutboxFullError(f"Failed to open outbox {str(p)!r}: disk full") from exc
            if not is_damage(exc):
                # Locked by another process, an I/O error, no permission: the file may be
                # fine and in use, so it must never be moved aside for this.
                raise OutboxError(f"Failed to open outbox {str(p)!r}: {exc}") from exc
            raise OutboxCorruptError(str(exc)) from exc
        except UnicodeDecodeError as exc:  # an error text or value quoting damaged bytes
            db.close()
            raise OutboxCorruptError(f"damaged bytes in the schema ({exc})") from exc
        except OutboxError:
            db.close()
            raise
        return db

    @staticmethod
    def _quick_check_untouched(p: Path) -> bool:
        """Run ``PRAGMA quick_check`` on ``p`` without changing it or its WAL; whether it ran.

        Closing a read-write connection checkpoints the ``-wal`` into the main
        file (damaged or not) and deletes the ``-wal`` and ``-shm``; a garbage
        ``-wal`` is simply deleted.  A check through one would change what it
        found before it could be moved aside.  A ``mode=ro`` connection never
        writes the main file or the ``-wal`` and takes no part in checkpoints,
        so it leaves both as they were.  It does create an empty ``-wal`` and a
        ``-shm`` that are missing and rebuilds the ``-shm`` (SQLite's index of
        the WAL, rebuilt by whichever connection opens the file first, so its
        bytes carry nothing worth keeping); on damage the files it created are
        removed, so the file and its WAL go aside byte for byte as they were
        found.  An existing ``-shm`` is left as SQLite left it: swapping in a
        copy of its old bytes would give a process that still maps it a
        different file from the next one to open it.

        Returns ``False``, having changed nothing, when there is no file yet or
        the read-only check cannot run for a reason other than damage or a
        lock (a hot rollback journal that only a writer may replay, no
        permission): the read-write connection then runs the check itself.

        Raises:
            OutboxCorruptError: ``p`` fails the check or is not a database.
            OutboxError: another process holds the file locked past the busy
                timeout (the read-write open would only wait it out again).
        """
        wal, shm = Path(f"{p}-wal"), Path(f"{p}-shm")
        try:
            if not p.is_file():
                return False
            had_wal, had_shm = wal.exists(), shm.exists()
        except OSError:
            return False
        try:
            db = connect_readonly(p)
        except sqlite3.Error:
            return False
        try:
            problem = quick_check(db) or schema_problem(db)
        except UnicodeDecodeError as exc:  # an error text or value quoting damaged bytes
            problem = f"damaged bytes in the schema ({exc})"
        except sqlite3.DatabaseError as exc:
            if is_busy(exc):  # the writer would wait out the same lock again: say so now
                raise OutboxError(f"Failed to open outbox {str(p)!r}: {exc}") from exc
            if not is_damage(exc):
                return False
            problem = str(exc)
        finally:
            db.close()
        if not problem:
            return True
        try:
            if not had_wal and wal.exists() and wal.stat().st_size == 0:
                wal.unlink()
            if not had_shm:
                shm.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("outbox %s: could not undo the check's -wal/-shm: %s", p, exc)
        raise OutboxCorruptError(problem)

    @staticmethod
    def _move_aside(p: Path, clock: Clock) -> Path:
        """Rename a damaged outbox, with its WAL and shared memory, to a name none has.

        The name is ``<name>.corrupt-<UTC time>``, with ``.1``, ``.2``, ... added
        when a copy moved aside in the same second holds it, so a file that
        fails again at once never overwrites the earlier copy ("never deleted").
        The companions keep the main file's new name plus ``-wal``/``-shm``, so
        the copy opens as it was; none is left behind for the fresh file to
        replay.
        """
        stamp = clock().strftime("%Y%m%dT%H%M%SZ")
        suffixes = ("", "-wal", "-shm")
        for n in itertools.count():
            target = p.with_name(f"{p.name}.corrupt-{stamp}" + (f".{n}" if n else ""))
            if any(Path(str(target) + s).exists() for s in suffixes):
                continue
            moved: list[str] = []
            for s in (s for s in suffixes if Path(str(p) + s).exists()):
                if not _rename_no_replace(Path(str(p) + s), Path(str(target) + s)):
                    break  # taken in between (another process): none of ours stays under it
                moved.append(s)
            else:
                return target
            for s in moved:
                os.rename(Path(str(target) + s), Path(str(p) + s))
        raise AssertionError("unreachable")  # itertools.count() never ends

    def now_iso(self) -> str:
        """The time now by :attr:`clock`, as the outbox stores times (UTC, milliseconds)."""
        return self.clock().isoformat(timespec="milliseconds")

    def close(self) -> None:
        """Checkpoint the WAL and close the file.  Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with self._read_lock:
                if self._reader_db is not None:
                    self._reader_db.close()
                    self._reader_db = None
            if not self.readonly:
                try:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:
                    log.warning("outbox %s: checkpoint at close failed: %s", self.path, exc)
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ------------------------------------------------------

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), nested ones as savepoints.

        SQLite errors are mapped to :class:`OutboxError` (disk full to
        :class:`OutboxFullError`); the original error is chained, and a failed
        rollback never hides it.
        """
        with self._lock:
            if self._closed:
                raise OutboxError(f"Failed to use outbox {str(self.path)!r}: it is closed")
            db = self._db
            outer = self._depth == 0
            name = f"sp{self._depth}"
            try:
                db.execute("BEGIN IMMEDIATE" if outer else f"SAVEPOINT {name}")
            except sqlite3.Error as exc:
                raise self._map(exc, "begin a transaction") from exc
            self._depth += 1
            try:
                yield db
            except BaseException as exc:
                self._depth -= 1
                try:
                    db.execute("ROLLBACK" if outer else f"ROLLBACK TO {name}")
                    if not outer:
                        db.execute(f"RELEASE {name}")
                except sqlite3.Error:
                    log.exception("outbox %s: rollback failed", self.path)
                if isinstance(exc, sqlite3.Error):
                    raise self._map(exc, "write") from exc
                raise
            self._depth -= 1
            try:
                db.execute("COMMIT" if outer else f"RELEASE {name}")
            except sqlite3.Error as exc:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("outbox %s: rollback after failed commit failed", self.path)
                raise self._map(exc, "commit") from exc

    @contextmanager
    def bills(self) -> Iterator[BillStore]:
        """One transaction over the bill tables and the bill log (see ``_bill_store``).

        Raises:
            OutboxError: as :meth:`atomic`; an error raised inside rolls the
                transaction back and goes on.
        """
        with self.atomic() as db:
            yield BillStore(db, self.now_iso())

    @contextmanager
    def _without_fsync(self) -> Iterator[None]:
        """Commit the enclosed outermost transaction without waiting for fsync.

        Only for writes whose loss at a power cut is harmless because they
        are redone: a settle that is lost leaves its rows in flight under the
        same (durable) lease, so the batch is sent again with the same id and
        the service's idempotency answers as before.  The WAL keeps commits in
        order, and the next ``synchronous=FULL`` commit (any scan group) makes
        this one durable too.  A process crash (kill -9) loses nothing: the
        write is in the OS page cache.  Scans and leases always wait for fsync.
        """
        if self._depth:
            yield
            return
        self._db.execute("PRAGMA synchronous = NORMAL")
        try:
            yield
        finally:
            self._db.execute("PRAGMA synchronous = FULL")

    def _map(self, exc: sqlite3.Error, doing: str) -> OutboxError:
        if is_full(exc):
            return OutboxFullError(f"Failed to {doing} in outbox {str(self.path)!r}: disk full")
        return OutboxError(f"Failed to {doing} in outbox {str(self.path)!r}: {exc}")

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """Run a query on the read connection (see :meth:`_reader`)."""
        with self._read_lock:
            if self._closed:
                raise OutboxError(f"Failed to use outbox {str(self.path)!r}: it is closed")
            try:
                return self._reader().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._map(exc, "read") from exc

    def _reader(self) -> sqlite3.Connection:
        """A second, query-only connection for reports; the caller holds ``_read_lock``.

        WAL lets it read committed data while the writer commits, so a slow
        report (counting a month of audit rows) run from another thread never
        holds up the group commits that scan acknowledgements wait for.
        """
        if self.readonly:
            return self._db  # already a read-only connection
        if self._reader_db is None:
            self._reader_db = connect_reader(self.path)
        return self._reader_db

    def check_free_space(self) -> None:
        """Raise :class:`OutboxFullError` when the free-space reserve is reached."""
        self._space_for(scans=True)

    def _space_for(self, *, scans: bool) -> None:
        """Check free space before a commit; raise for ``scans`` below the reserve.

        Refusals need twice the reserve: below that they are counted in
        :attr:`refusals_dropped` and not written (see :meth:`_record_rejects`),
        so a flood of refused input can never bring the disk down to the
        reserve, where real scans would be refused.
        """
        if self.min_free_bytes <= 0:
            self._refusals_room = True
            return
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError as exc:
            raise OutboxError(f"Failed to check free space for {str(self.path)!r}: {exc}") from exc
        room = free >= 2 * self.min_free_bytes
        if room != self._refusals_room:
            if room:
                log.warning("outbox %s: free space is back; refusals are recorded again", self.path)
            else:
                log.warning(
                    "outbox %s: free space %d KiB is below twice the reserve; refused scans are "
                    "counted but no longer recorded",
                    self.path,
                    free // 1024,
                )
        self._refusals_room = room
        if scans and free < self.min_free_bytes:
            raise OutboxFullError(
                f"Failed to queue scans in {str(self.path)!r}: free space {free // 1024} KiB "
                f"is below the reserve of {self.min_free_bytes // 1024} KiB"
            )

    # -- intake ------------------------------------------------------------

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
        if scans and not rejects and len(scans) <= _ROWS_PER_STATEMENT:
            fast = self._enqueue_one_statement(scans, reject_duplicates)
            if fast is not None:
                return fast
        refused: list[RejectRecord] = list(rejects)
        results: list[EnqueueResult] = []
        with self.atomic() as db:
            for start in range(0, len(scans), _ROWS_PER_STATEMENT):
                chunk = scans[start : start + _ROWS_PER_STATEMENT]
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
            if self._closed:
                raise OutboxError(f"Failed to use outbox {str(self.path)!r}: it is closed")
            if self._depth:
                return None
            n = len(scans)
            try:
                rows, params = _group_params(scans)
                cur = self._db.execute(_insert_sql(rows, reject_duplicates), params)
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
        cur = db.execute(_insert_sql(rows, reject_duplicates), params)
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
                for start in range(0, len(new), _ROWS_PER_STATEMENT):
                    self._insert_chunk(
                        db, new[start : start + _ROWS_PER_STATEMENT], [], reject_duplicates=False
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

    # -- delivery ----------------------------------------------------------

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
                db, f"SELECT * FROM scans WHERE {_IN_BATCH} ORDER BY seq", span, "in_flight"
            )
            if found.damaged:
                return found.damaged
            if found.rows:
                return Batch(
                    batch_id, tuple(map(BatchEvent._make, found.rows)), attempts + 1, found.wire
                )
            # Every row of it was settled some other way: the batch is spent.
            db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
        pending = f"SELECT * FROM scans WHERE {_PENDING} AND {_SENDABLE} ORDER BY seq LIMIT ?"
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

    def _rebuild_indexes(self, db: sqlite3.Connection, why: str) -> None:
        """Rebuild the partial indexes of ``scans`` by state from the table, with an alarm.

        A damaged index entry (a flipped bit in a seq) makes a lease select a row
        that is not pending, or miss one that is: the table is the truth, and
        these indexes hold nothing else.
        """
        log.error("ALARM: outbox %s: rebuilding the indexes of rows by state (%s)", self.path, why)
        db.execute("REINDEX scans_unsent")
        db.execute("REINDEX scans_dead")
        alarm = f"outbox {self.path}: an index of rows by state was damaged ({why}); rebuilt"
        if alarm not in self.alarms:
            self.alarms.append(alarm)

    def _quarantine(self, db: sqlite3.Connection, damaged: Sequence[DamagedRow]) -> None:
        """Quarantine ``damaged`` rows in ``db``'s transaction; raise the alarm, log once.

        A batch that held one is dissolved (its other rows go back to pending and
        are leased again under a new id): the same batch id must always carry the
        same events, and the service answers an event it already holds as a
        duplicate, so nothing is delivered twice.
        """
        for batch_id in quarantine(db, damaged, self.now_iso()):
            self._unbatch_in(db, batch_id)
        new = [d for d in damaged if d.seq not in self._quarantined]
        for d in new:
            self._quarantined[d.seq] = d.problem
            log.error(
                "ALARM: outbox %s: damaged row seq %d quarantined (%s); its bytes are kept in "
                "the quarantine table",
                self.path,
                d.seq,
                d.problem,
            )
        if new:
            self._raise_quarantine_alarm()

    def _raise_quarantine_alarm(self) -> None:
        """One alarm line for every row quarantined since open, replaced as more are found."""
        shown = ", ".join(f"seq {seq}: {why}" for seq, why in list(self._quarantined.items())[:5])
        more = len(self._quarantined) - 5
        n = len(self._quarantined)
        alarm = (
            f"outbox {self.path}: {n} damaged row{'s' if n > 1 else ''} quarantined "
            f"({shown}{f', and {more} more' if more > 0 else ''}); never sent, kept for forensics "
            "(scanner-agent queue ls --state quarantined)"
        )
        self.alarms[:] = [a for a in self.alarms if a is not self._quarantine_alarm] + [alarm]
        self._quarantine_alarm = alarm

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
            span = self._batch_span(db, batch_id)
            found = db.execute(
                f"SELECT json_group_array(event_id) FROM scans WHERE {_IN_BATCH}", span
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
                f"settled_at = ? WHERE {_IN_BATCH}",
                (settled_at, *span),
            )
            db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
        return SettleSummary(**counts)

    @staticmethod
    def _batch_span(db: sqlite3.Connection, batch_id: str) -> tuple[int, int, str]:
        """The parameters of :data:`_IN_BATCH` for ``batch_id`` (an empty range if unknown)."""
        row = db.execute(
            "SELECT first_seq, last_seq FROM batches WHERE batch_id = ?", (batch_id,)
        ).fetchone()
        if row is None:
            return (0, -1, batch_id)
        return (int(row[0]), int(row[1]), batch_id)

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
            return self._unbatch_in(db, batch_id)

    def _unbatch_in(self, db: sqlite3.Connection, batch_id: str) -> int:
        """:meth:`unbatch` in the caller's transaction."""
        cur = db.execute(
            f"UPDATE scans SET state = 'pending', batch_id = NULL WHERE {_IN_BATCH}",
            self._batch_span(db, batch_id),
        )
        db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
        return int(cur.rowcount)

    def dead_letter_batch(self, batch_id: str, reason: str) -> int:
        """Move every row of a batch the service refused as a whole to ``rejected``."""
        with self.atomic() as db:
            cur = db.execute(
                "UPDATE scans SET state = 'rejected', result = 'rejected', reason = ?, settled_at = ? "
                f"WHERE {_IN_BATCH}",
                (reason, self.now_iso(), *self._batch_span(db, batch_id)),
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

    # -- housekeeping --------------------------------------------------------

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

    def checkpoint(self) -> WalCheckpoint:
        """Fold the WAL back into the file without ever making the writer wait.

        It runs on the outbox thread, where every group commit (and so every
        scan's ACK) queues behind it, so it never waits for a lock.  Usually it
        is ``PASSIVE``: it copies the frames no reader still needs and returns.
        When nothing was written through this outbox since the previous call
        (the daemon calls it once per housekeeping tick, so idle for a whole
        tick) it is ``TRUNCATE``, which also empties the WAL file, with the busy
        timeout at 0 for that call alone: a reader holding an old snapshot makes
        it stop at once as ``busy`` instead of stalling commits for the busy
        timeout; the next idle tick tries again.  SQLite's auto-checkpoint is
        left on, so under steady load the WAL is reused rather than grown.
        """
        with self._lock:
            if self._closed:
                raise OutboxError(f"Failed to use outbox {str(self.path)!r}: it is closed")
            db = self._db
            mode = "TRUNCATE" if db.total_changes == self._changes_at_checkpoint else "PASSIVE"
            try:
                if mode == "PASSIVE":  # never waits: SQLite skips the busy handler
                    row = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                else:
                    (waits_ms,) = db.execute("PRAGMA busy_timeout").fetchone()
                    db.execute("PRAGMA busy_timeout = 0")
                    try:
                        row = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    finally:
                        db.execute(f"PRAGMA busy_timeout = {int(waits_ms)}")
            except sqlite3.Error as exc:
                raise self._map(exc, "checkpoint") from exc
            self._changes_at_checkpoint = db.total_changes
            return WalCheckpoint(mode, bool(row[0]), int(row[1]), int(row[2]))

    # -- queries -------------------------------------------------------------

    def stats(self) -> QueueStats:
        """Counts per row state (``_states``), oldest undelivered scan, file sizes.

        Each row is counted in exactly one state; ``held`` and ``removed`` are
        also given on their own.
        """
        with self._read_lock:
            if self._closed:
                raise OutboxError(f"Failed to use outbox {str(self.path)!r}: it is closed")
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
                        ("scans INDEXED BY scans_unsent", _PENDING),
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

    def _read_rows(self, where: str, params: Sequence[object], limit: int) -> RowRead:
        """:func:`~scanner_agent.outbox._damage.read_rows` on the read connection."""
        with self._read_lock:
            if self._closed:
                raise OutboxError(f"Failed to use outbox {str(self.path)!r}: it is closed")
            try:
                return read_rows(self._reader(), where, params, limit=limit, with_row_state=True)
            except sqlite3.Error as exc:
                raise self._map(exc, "read") from exc

    def rejects(self, *, limit: int = 1000) -> list[RejectRecord]:
        """Scans refused at intake, newest aggregate last (each with its count and last time)."""
        rows = self._read(
            "SELECT raw, code, reason, verdict, device_id, source, scanned_at, count, "
            f"{REJECT_LAST_AT} FROM rejects ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [RejectRecord(*r) for r in reversed(rows)]

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
