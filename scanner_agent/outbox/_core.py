"""What every part of :class:`~scanner_agent.outbox.Outbox` shares: the open file itself.

:class:`OutboxCore` holds the two connections to an open outbox file (the
writer, and a ``query_only`` reader created on first use so that a slow report
never holds up a group commit), the lock and transaction depth behind
:meth:`~OutboxCore.atomic`, the free-space reserve, the WAL checkpoint and
:meth:`~OutboxCore.close`.  The write path, delivery, repairs and queries are
mixins over it (see ``_outbox.py`` for why mixins).

The class is synchronous and does its own locking; the daemon calls it from a
single dedicated thread (:class:`~scanner_agent.outbox.OutboxThread`) so the
event loop never blocks on fsync.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from scanner_agent.kernel import Clock, OutboxError, OutboxFullError, utc_now
from scanner_agent.outbox._bill_store import BillStore
from scanner_agent.outbox._connect import connect_reader, is_full
from scanner_agent.outbox._damage import RowRead, read_rows
from scanner_agent.outbox._models import WalCheckpoint
from scanner_agent.outbox._rejects import DEFAULT_REJECTS_MAX_ROWS

__all__ = ["OutboxCore"]

log = logging.getLogger(__name__)


class OutboxCore:
    """An open outbox file: its connections, transactions, reserve and checkpoint."""

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

    def _check_open(self) -> None:
        """Raise when the outbox was closed (the caller holds one of its locks)."""
        if self._closed:
            raise OutboxError(f"Failed to use outbox {str(self.path)!r}: it is closed")

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

    def __enter__(self) -> Self:
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
            self._check_open()
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
            self._check_open()
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

    def _read_rows(self, where: str, params: Sequence[object], limit: int) -> RowRead:
        """:func:`~scanner_agent.outbox._damage.read_rows` on the read connection."""
        with self._read_lock:
            self._check_open()
            try:
                return read_rows(self._reader(), where, params, limit=limit, with_row_state=True)
            except sqlite3.Error as exc:
                raise self._map(exc, "read") from exc

    # -- free space and the WAL ----------------------------------------------

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
            self._check_open()
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
