"""Opening an outbox file: checked before use, moved aside when damaged, WAL damage kept.

What :meth:`Outbox.open <scanner_agent.outbox.Outbox.open>` does to the file
before the outbox is handed out, as functions of the path:

* :func:`connect_checked`: the read-write connection, in WAL mode with
  ``synchronous=FULL`` (a COMMIT that returned is on disk), after the file
  passed ``PRAGMA quick_check`` and the schema check.  The check runs through
  a read-only connection first (:func:`quick_check_untouched`), so a damaged
  file and its WAL can be moved aside exactly as they were found.
* :func:`move_aside`: a damaged file goes to ``<name>.corrupt-<UTC time>``
  with its ``-wal`` and ``-shm`` (never deleted, never overwriting an earlier
  copy), and the open starts a fresh file, so a damaged disk never turns into
  a crash loop.
* :func:`keep_damaged_wal`: a WAL whose replay would drop committed frames is
  copied aside before SQLite replays it, for the open to salvage from.
* :func:`readonly_problem`: why a file may not be opened read-only (a schema
  other than this build's).

Path rules and file modes are ``_file.py``'s; the WAL format is ``_wal.py``'s.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import sqlite3
import struct
from pathlib import Path

from scanner_agent.kernel import Clock, OutboxCorruptError, OutboxError, OutboxFullError
from scanner_agent.outbox._connect import (
    connect_readonly,
    connect_writer,
    is_busy,
    is_damage,
    is_full,
    quick_check,
)
from scanner_agent.outbox._damage import schema_problem
from scanner_agent.outbox._schema import SCHEMA_VERSION
from scanner_agent.outbox._wal import WalReport, inspect_wal

__all__ = [
    "connect_checked",
    "keep_damaged_wal",
    "move_aside",
    "quick_check_untouched",
    "readonly_problem",
]

log = logging.getLogger(__name__)


def connect_checked(p: Path) -> sqlite3.Connection:
    """A read-write connection to ``p``, checked, in WAL mode with ``synchronous=FULL``.

    Raises:
        OutboxCorruptError: ``p`` is damaged or not a database.
        OutboxFullError: the disk is full.
        OutboxError: it cannot be opened (locked, no permission, an I/O error).
    """
    checked = quick_check_untouched(p)
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


def quick_check_untouched(p: Path) -> bool:
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


def move_aside(p: Path, clock: Clock) -> Path:
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


def keep_damaged_wal(p: Path, clock: Clock) -> tuple[WalReport, Path] | None:
    """Check ``p``'s WAL before SQLite replays it; on damage, copy both aside first.

    SQLite replays a WAL up to the first frame whose checksum fails and
    drops every frame after it in silence, committed ones too
    (:mod:`scanner_agent.outbox._wal`).  When committed frames would be
    dropped, the file and its WAL are copied, as found, to
    ``<name>.wal-damaged-<UTC time>`` (and ``-wal``) before anything opens
    them, and the report and the copy are returned for
    :meth:`Outbox._salvage_damaged_wal`.  A WAL that cannot be read is left to
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


def readonly_problem(version: int) -> str:
    """Why a file at schema ``version`` may not be opened read-only; empty when it may.

    The queries are written for this build's schema, and only the read-write
    open migrates.
    """
    if version == 0:
        return "not an outbox (no schema version)"
    if version < SCHEMA_VERSION:
        return f"schema v{version}, older than v{SCHEMA_VERSION} (the agent migrates it when it starts)"
    if version > SCHEMA_VERSION:
        return f"schema v{version}, written by a newer scanner-agent (this one reads v{SCHEMA_VERSION})"
    return ""
