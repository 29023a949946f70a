"""The outbox: a SQLite file that holds every accepted scan until delivered.

Design (see docs/outbox.md):

* WAL journal with ``synchronous=FULL``: a COMMIT that returned is on disk and
  survives power loss, so a good-read signal given after it is a promise kept.
* Writes are grouped: :meth:`Outbox.enqueue_many` commits a whole group of
  scans in one transaction (the daemon's group committer gathers them; the
  common group is a single autocommit INSERT), so durability costs one fsync
  per group, not per scan.
* Delivery uses leases (Telegraf's buffer contract): :meth:`Outbox.lease`
  hands out the oldest pending rows under a new ``batch_id``; a retry, even
  after a crash, gets the *same* batch id with the *same* rows back, so the
  service's idempotency holds.  :meth:`Outbox.settle` records per-event
  results; rows leave the backlog only as ``delivered`` or ``rejected`` (dead
  letter, re-sendable).
* Disk full and a free-space reserve raise :class:`OutboxFullError` before
  anything is written; a file that fails ``PRAGMA quick_check`` at open is
  moved aside (never deleted) and a fresh one started, with an alarm.

**One class, one module per concern.**  :class:`Outbox` is the one public
class; its parts are mixins over :class:`~scanner_agent.outbox._core.OutboxCore`
(the connections, ``atomic()``, the reserve, the checkpoint), each in a module
that holds one concern: the write path (``_enqueue.py``), delivery
(``_lease.py``, over the repairs of ``_repair.py``), queries
(``_queries.py``), and here the open, which puts a file through
``_open.py``'s checks and recovery before handing it out.  Mixins rather than
composition because every part works in the *same* transaction on the same
connection, lock and nesting depth (a lease quarantines a damaged row and
dissolves its batch inside its own savepoint): parts holding each other
would pass that state around or forward some thirty methods, and every
caller (``outbox.lease(...)``) would change.  Each mixin depends only on the
core (delivery also on the repairs), never on another part, and the hot
paths run without a forwarding call.

The class is synchronous and does its own locking; the daemon calls it from a
single dedicated thread so the event loop never blocks on fsync.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Self

from scanner_agent.kernel import Clock, OutboxCorruptError, OutboxError, utc_now
from scanner_agent.outbox._connect import connect_readonly
from scanner_agent.outbox._enqueue import OutboxWriter
from scanner_agent.outbox._file import (
    DIR_MODE,
    check_outbox_path,
    create_outbox_file,
    mark_outbox,
    newer_schema,
    tighten_modes,
)
from scanner_agent.outbox._lease import OutboxDelivery
from scanner_agent.outbox._open import (
    connect_checked,
    keep_damaged_wal,
    move_aside,
    readonly_problem,
)
from scanner_agent.outbox._queries import OutboxQueries
from scanner_agent.outbox._recode import OutboxRecodes
from scanner_agent.outbox._rejects import DEFAULT_REJECTS_MAX_ROWS
from scanner_agent.outbox._salvage import salvage
from scanner_agent.outbox._schema import current_version, migrate
from scanner_agent.outbox._wal import WalReport, repaired_copy

__all__ = ["Outbox"]

log = logging.getLogger(__name__)


class Outbox(OutboxDelivery, OutboxWriter, OutboxQueries, OutboxRecodes):
    """An open outbox file.  Use :meth:`open`; close with :meth:`close`."""

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        min_free_bytes: int = 0,
        rejects_max_rows: int = DEFAULT_REJECTS_MAX_ROWS,
        clock: Clock = utc_now,
    ) -> Self:
        """Open (creating, checking and migrating as needed) the outbox at ``path``.

        A file that is not a database or fails ``PRAGMA quick_check`` is renamed
        to ``<name>.corrupt-<UTC time>`` (plus a counter if that name is taken;
        see :func:`~scanner_agent.outbox._open.move_aside`) together with its WAL, and a fresh file is
        started, so a damaged disk never turns into a crash loop.  The check
        runs through a read-only connection (:func:`~scanner_agent.outbox._open.quick_check_untouched`),
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
        damaged_wal = keep_damaged_wal(p, clock)
        try:
            db = connect_checked(p)
        except OutboxCorruptError as exc:
            moved = move_aside(p, clock)
            alarm = f"outbox {p} failed its integrity check ({exc}); moved aside to {moved} and started a new one"
            log.error("ALARM: %s", alarm)
            alarms.append(alarm)
            create_outbox_file(p)
            db = connect_checked(p)
        tighten_modes(p)
        outbox = cls(
            p, db, min_free_bytes=min_free_bytes, rejects_max_rows=rejects_max_rows, clock=clock
        )
        outbox.alarms.extend(alarms)
        if newer := newer_schema(current_version(db)):  # in the WAL, not yet in the header
            db.close()
            raise OutboxError(
                f"Failed to open outbox {str(p)!r}: it {newer}; it was left untouched"
            )
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

    @classmethod
    def open_readonly(cls, path: str | Path, *, clock: Clock = utc_now) -> Self:
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
        try:
            reader = connect_readonly(p)
        except sqlite3.Error as exc:
            raise OutboxError(f"Failed to open outbox {str(p)!r} read-only: {exc}") from exc
        try:
            version = current_version(reader)
        except sqlite3.Error as exc:
            reader.close()
            raise OutboxError(f"Failed to open outbox {str(p)!r} read-only: {exc}") from exc
        problem = readonly_problem(version)
        if problem:
            reader.close()
            raise OutboxError(f"Failed to open outbox {str(p)!r} read-only: {problem}")
        return cls(p, reader, readonly=True, clock=clock)

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
        if report.header_damaged:
            what = (
                f"damaged in its header: SQLite would have ignored all {report.frames} frames, "
                f"holding {report.stranded_commits} intact committed transactions"
                + (
                    f" (the writer had committed {report.committed} frames)"
                    if report.committed
                    else ""
                )
            )
        elif report.stranded_commits:
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
