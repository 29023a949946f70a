"""Looking at an outbox file without changing it.

``scanner-agent doctor`` checks the file of a daemon that may be running, or of
one that is not installed yet: :func:`check_file` opens it through the one
read-only opener (:func:`~scanner_agent.outbox._connect.connect_readonly`), so
a look never writes the file, never migrates it and never moves it aside.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from scanner_agent.outbox._connect import connect_readonly, quick_check
from scanner_agent.outbox._states import backlog_count, count_row_states

__all__ = ["FileCheck", "check_file"]


@dataclass(frozen=True, slots=True)
class FileCheck:
    """What :func:`check_file` found."""

    open_error: str = ""
    """Why the file could not be opened (SQLite's words); empty when it opened."""
    problem: str = ""
    """What ``PRAGMA quick_check`` found, or why it could not run; empty when the file is sound."""
    owed: int | None = None
    """Scans not yet delivered; ``None`` when not counted (a file not migrated yet)."""


def check_file(path: Path) -> FileCheck:
    """Open ``path`` read-only, run ``PRAGMA quick_check``, count the scans still owed."""
    try:
        db = connect_readonly(path)
    except sqlite3.Error as exc:
        return FileCheck(open_error=str(exc))
    try:
        db.execute("PRAGMA schema_version").fetchone()  # opens the file: access shows here
    except sqlite3.Error as exc:
        db.close()
        return FileCheck(open_error=str(exc))
    owed = None
    try:
        problem = quick_check(db)
        with contextlib.suppress(sqlite3.Error):  # a file the agent has not migrated yet
            owed = backlog_count(count_row_states(db))
    except sqlite3.Error as exc:
        problem = f"{type(exc).__name__}: {exc}"
    finally:
        db.close()
    return FileCheck(problem=problem, owed=owed)
