"""Connections to an outbox file, and what SQLite's errors on one mean.

Every connection to an outbox file is made here, so each kind is made one way:

* :func:`connect_writer`: the read-write connection of :meth:`Outbox.open`
  (WAL, ``synchronous=FULL`` are set by the open, after its checks);
* :func:`connect_reader`: the second, ``query_only`` connection an open outbox
  runs reports on, so a slow report never holds up a group commit;
* :func:`connect_readonly`: the one read-only opener (``mode=ro``), for
  anything that looks at a file it must never change: the integrity check
  before a file may be moved aside, :meth:`Outbox.open_readonly` (``queue
  stats``, ``bill history``), salvage of a damaged copy, ``doctor``.

The error tests (:func:`is_damage`, :func:`is_busy`, :func:`is_full`) read
SQLite's extended error code where Python gives it, and the message text
otherwise; they decide whether a file is moved aside (damage only, never a
lock or a full disk).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = [
    "BUSY_TIMEOUT_S",
    "connect_reader",
    "connect_readonly",
    "connect_writer",
    "is_busy",
    "is_damage",
    "is_damage_error",
    "is_full",
    "quick_check",
]

BUSY_TIMEOUT_S = 10.0
"""How long a connection waits for a lock held by another connection or process."""


def connect_readonly(path: Path, *, immutable: bool = False) -> sqlite3.Connection:
    """A ``mode=ro`` connection to ``path``, waiting up to the busy timeout for locks.

    It never writes the file or its WAL and takes no part in checkpoints, so
    looking at a file through it (a live daemon's, or a damaged one about to
    be moved aside) leaves the file as it was.  As for any reader of a WAL
    file, SQLite creates an empty ``-wal`` and ``-shm`` that are missing when
    the directory is writable; ``immutable`` (for a look at a header before
    anything else opens the file) tells SQLite nothing else writes the file,
    so it creates neither and takes no locks, and reads no WAL.

    Raises:
        sqlite3.Error: it cannot be opened.
    """
    flags = "mode=ro&immutable=1" if immutable else "mode=ro"
    return sqlite3.connect(
        f"{path.absolute().as_uri()}?{flags}",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        timeout=BUSY_TIMEOUT_S,
    )


def connect_writer(path: Path) -> sqlite3.Connection:
    """The read-write connection of an open outbox, in autocommit mode (see ``atomic``).

    Raises:
        sqlite3.Error: it cannot be opened.
    """
    # Room in the statement cache for every group-insert size class and the rest.
    db = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        timeout=BUSY_TIMEOUT_S,
        cached_statements=256,
    )
    _set_busy_timeout(db)
    return db


def connect_reader(path: Path) -> sqlite3.Connection:
    """A ``query_only`` connection for reports beside the writer of an open outbox.

    WAL lets it read committed data while the writer commits.

    Raises:
        sqlite3.Error: it cannot be opened.
    """
    db = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
    )
    _set_busy_timeout(db, "PRAGMA query_only = 1")
    return db


def _set_busy_timeout(db: sqlite3.Connection, *more: str) -> None:
    """Set the busy timeout (and ``more`` pragmas) on a new connection; close it on failure."""
    try:
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        for pragma in more:
            db.execute(pragma)
    except sqlite3.Error:
        db.close()
        raise


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file itself is damaged or not a database at all."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    text = str(exc)
    return "malformed" in text or "not a database" in text


def is_damage_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` (an error's cause) is SQLite reporting damage."""
    return isinstance(exc, sqlite3.Error) and is_damage(exc)


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether another connection holds a lock SQLite gave up waiting for (the busy timeout)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "database is locked" in str(exc)


def is_full(exc: sqlite3.Error) -> bool:
    """Whether SQLite ran out of disk (the write failed; nothing of it was kept)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc)


def quick_check(db: sqlite3.Connection) -> str:
    """``PRAGMA quick_check``'s finding ('' when ok).

    Read as bytes: its messages may quote damaged bytes, which would fail
    Python's decoding (a ``UnicodeDecodeError``, not an ``sqlite3.Error``).

    Raises:
        sqlite3.Error: the check could not run (damage it stopped at, a lock).
    """
    text_factory = db.text_factory
    db.text_factory = bytes
    try:
        row = db.execute("PRAGMA quick_check").fetchone()
    except UnicodeDecodeError as exc:  # SQLite's error message quotes damaged bytes
        return f"an error about damaged bytes ({exc})"
    finally:
        db.text_factory = text_factory
    if row is None:
        return "quick_check gave no result"
    text = bytes(row[0]).decode(errors="replace")
    return "" if text == "ok" else text
