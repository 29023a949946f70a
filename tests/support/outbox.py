"""Scans to put in an outbox, and outbox files as an earlier build left them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from scanner_agent.outbox import NewScan, uuid7
from scanner_agent.outbox._checksum import text_checksum
from scanner_agent.outbox._schema import MIGRATIONS

SCANNED_AT = "2026-11-23T10:00:00.000+00:00"


def new_scan(code: str, *, bill: str = "B1", action: str = "ship") -> NewScan:
    """A valid cn20 scan of ``code`` on ``bill``, as the intake would queue it."""
    return NewScan(uuid7(), code, "cn20", code, None, action, bill, "dock", "test", SCANNED_AT)


def cn20_scans(start: int, n: int, *, bill: str = "B1") -> list[NewScan]:
    """``n`` scans of distinct cn20 codes numbered from ``start``."""
    return [new_scan(f"8{i:019d}", bill=bill) for i in range(start, start + n)]


def outbox_at_schema(path: Path, version: int) -> sqlite3.Connection:
    """A new outbox file at schema ``version``, as the build that stopped there made it: an
    autocommit connection for the test to fill before an upgrade opens it."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE _migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)")
    for number, name, fn in MIGRATIONS[:version]:
        fn(db)
        db.execute("INSERT INTO _migrations VALUES (?, ?, '2026-01-01')", (number, name))
    db.execute(f"PRAGMA user_version = {version}")
    return db


def insert_checked(db: sqlite3.Connection, scans: Iterable[NewScan]) -> None:
    """Rows as a build with row checksums (schema 7 on) stored them, bypassing the outbox."""
    for scan in scans:
        db.execute(
            f"INSERT INTO scans ({', '.join(NewScan._fields)}, dup_guard, crc) "
            f"VALUES ({', '.join('?' * len(NewScan._fields))}, 0, ?)",
            (*scan, text_checksum(scan)),
        )
