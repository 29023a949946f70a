"""What may sit at the outbox path, and the modes of the files the agent makes there.

``run`` creates, migrates and writes the file at ``outbox.path``, so a wrong
thing there must be refused before a byte is written: a symbolic link (it
would be followed to wherever it points), a directory, a device, or another
program's SQLite database (a migration would add the agent's tables to it).
:func:`outbox_path_problem` is that one rule; :meth:`Outbox.open` and
``check-config`` (through :mod:`scanner_agent.ops.preflight`) both call it.

An outbox is recognised by its header's ``application_id``
(:data:`OUTBOX_APPLICATION_ID`, set by :meth:`Outbox.open`), or, for files
written before the id existed, by its ``_migrations`` table.  A file that is
not a readable SQLite database at all is left to the open's corruption
handling, which moves it aside whole: damage to an outbox's first page looks
exactly like that, and the scans in the rest are worth keeping.

Files are created :data:`FILE_MODE` whatever the process umask, and SQLite
gives the ``-wal`` and ``-shm`` the mode of the database file, so they follow.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from scanner_agent.kernel import OutboxError
from scanner_agent.outbox._connect import connect_readonly
from scanner_agent.outbox._schema import SCHEMA_VERSION

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "OUTBOX_APPLICATION_ID",
    "SQLITE_HEADER",
    "check_outbox_path",
    "create_outbox_file",
    "mark_outbox",
    "newer_schema",
    "outbox_path_problem",
    "tighten_modes",
]

OUTBOX_APPLICATION_ID = 0x53434147
"""``PRAGMA application_id`` of an outbox (``SCAG``), at offset 68 of the file header."""
FILE_MODE = 0o640
"""Outbox, WAL and SHM: the service user writes, its group reads (``queue stats``, audit)."""
DIR_MODE = 0o750
"""A directory the outbox open creates."""
SQLITE_HEADER = b"SQLite format 3\x00"
_HEADER_BYTES = 100


def outbox_path_problem(path: Path) -> str:
    """What is wrong with what sits at ``path`` (``is a directory; ...``), empty when nothing.

    Nothing there, an empty file, an outbox and a damaged file are fine.  It
    reads at most the header and the table names, through an ``immutable``
    read-only connection, which writes nothing (not even a ``-shm``).

    Raises:
        OutboxError: ``path`` cannot be looked at (no permission).
    """
    try:
        st = path.lstat()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise OutboxError(f"Failed to open outbox {str(path)!r}: {exc.strerror}") from exc
    if stat.S_ISLNK(st.st_mode):
        return (
            f"is a symbolic link (to {os.readlink(path)!r}); the agent never follows one "
            "there: set outbox.path to the real file"
        )
    if stat.S_ISDIR(st.st_mode):
        return (
            "is a directory; outbox.path names the database file "
            f"(e.g. {str(path / 'outbox.db')!r})"
        )
    if not stat.S_ISREG(st.st_mode):
        return f"is not a regular file ({stat.filemode(st.st_mode)})"
    foreign = _foreign(path)
    return f"{foreign}; it was left untouched" if foreign else ""


def check_outbox_path(path: Path) -> None:
    """Refuse ``path`` when :func:`outbox_path_problem` finds a problem.

    Raises:
        OutboxError: naming the path and the problem.
    """
    problem = outbox_path_problem(path)
    if problem:
        raise OutboxError(f"Failed to open outbox {str(path)!r}: it {problem}")


def _foreign(path: Path) -> str:
    """Why the regular file ``path`` is another program's database; empty when it is not."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise OutboxError(f"Failed to open outbox {str(path)!r}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        header = f.read(_HEADER_BYTES)
    if len(header) < _HEADER_BYTES or not header.startswith(SQLITE_HEADER):
        return ""  # empty (a new outbox), or not readable as SQLite: the open's damage rules
    app_id = int.from_bytes(header[68:72], "big")
    if app_id == OUTBOX_APPLICATION_ID:
        return newer_schema(int.from_bytes(header[60:64], "big"))
    if app_id:
        return f"is another program's SQLite database (application_id {app_id:#010x})"
    try:
        db = connect_readonly(path, immutable=True)
        try:
            names = sorted(
                str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            )
        finally:
            db.close()
    except sqlite3.Error:
        return ""  # damaged: moved aside by the open, never written into
    if not names or "_migrations" in names:
        return ""
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"is a SQLite database that is not an outbox (tables {shown})"


def newer_schema(version: int) -> str:
    """Why an outbox at schema ``version`` is not this agent's to write; empty when it is.

    A box downgraded after a newer agent migrated its outbox: this one would write rows
    without what the newer schema added (and count them with rules that no longer hold).
    """
    if version <= SCHEMA_VERSION:
        return ""
    return (
        f"is at schema v{version}, written by a newer scanner-agent (this one knows up to "
        f"v{SCHEMA_VERSION}): install that version again, or move the file away to start "
        "an empty outbox"
    )


def mark_outbox(db: sqlite3.Connection) -> None:
    """Set :data:`OUTBOX_APPLICATION_ID` in the header of a migrated outbox, once."""
    row = db.execute("PRAGMA application_id").fetchone()
    if row is None or row[0] != OUTBOX_APPLICATION_ID:
        db.execute(f"PRAGMA application_id = {OUTBOX_APPLICATION_ID}")


def create_outbox_file(path: Path) -> None:
    """Create ``path`` empty with :data:`FILE_MODE` (never through a symlink) unless it exists.

    Raises:
        OutboxError: it cannot be created.
    """
    try:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
        )
    except FileExistsError:
        return
    except OSError as exc:
        raise OutboxError(f"Failed to create outbox {str(path)!r}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, FILE_MODE)  # the umask took bits off the mode given to open
    finally:
        os.close(fd)


def tighten_modes(path: Path) -> None:
    """Take "other" permissions off the outbox and its ``-wal``/``-shm`` (files made before
    the agent set modes itself); files of another owner are left as they are."""
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            st = p.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o007 and st.st_uid == os.geteuid():
                os.chmod(p, stat.S_IMODE(st.st_mode) & ~0o007)
        except OSError:
            continue
