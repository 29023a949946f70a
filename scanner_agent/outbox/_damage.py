"""Reading scan rows defensively, and keeping the damaged ones in quarantine.

The fast reads of the outbox let SQLite and Python's ``sqlite3`` turn a row into
text, and one byte that is not UTF-8 fails the whole query ("Could not decode
to UTF-8 column"), for every lease, forever (issue 16).  The reads here take
every text column as bytes (``CAST(... AS BLOB)``) and decode each in Python,
so one bad row is one finding, not a failed query; they also check each row's
checksum (:mod:`scanner_agent.outbox._checksum`) and state.  They run only when
a fast read failed or found a bad checksum (lease), page by page for export,
and over a whole file for salvage, so their cost is off the hot path.

A damaged row is *quarantined*: its state becomes ``quarantined`` (it is never
sent again and leaves the backlog) and a ``quarantine`` row keeps what was
wrong and the row's bytes as found, for forensics.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from scanner_agent.outbox._checksum import CHECKED_FIELDS, VALID_STATES, text_checksum
from scanner_agent.outbox._states import row_state_sql

__all__ = [
    "DamagedRow",
    "QuarantinedRow",
    "RowRead",
    "quarantine",
    "read_rows",
    "row_content",
    "row_problem",
    "scan_columns",
    "schema_problem",
]

_REQUIRED_COLUMNS = {
    "scans": {
        "seq", "event_id", "code", "scheme", "raw", "symbology", "product", "gtin", "batch_no",
        "expiry", "serial", "action", "bill", "device_id", "source", "scanned_at", "state",
        "batch_id", "result", "reason", "attempts", "settled_at",
    },
    "batches": {"batch_id", "created_at", "lease_until", "attempts", "events", "last_error"},
    "rejects": {"id", "raw", "code", "reason", "verdict", "device_id", "source", "scanned_at"},
    "_migrations": {"version", "name", "applied_at"},
}  # fmt: skip
"""Columns each table has had since migration 1 (whatever the file's version)."""
_STATE_LITERALS = ("'pending'", "'in_flight'", "'delivered'", "'rejected'")
"""What the state CHECK of ``scans`` names in every version."""


class DamagedRow(NamedTuple):
    """A row that cannot be trusted: which, why, and its bytes."""

    seq: int
    problem: str
    content: bytes
    """Every column as stored, ``name=value`` joined by ``\\x1f`` (text as its raw bytes,
    numbers as their digits, NULL as ``NULL``): see :func:`row_content`."""


class RowRead(NamedTuple):
    """What a defensive read found: the good rows (column name to value) and the damaged ones."""

    rows: list[dict[str, Any]]
    damaged: list[DamagedRow]


@dataclass(frozen=True, slots=True)
class QuarantinedRow:
    """A quarantined scan row, as ``Outbox.quarantined`` lists it."""

    seq: int
    found_at: str
    problem: str
    content_hex: str
    """The row's bytes as found (see :class:`DamagedRow`), in hex."""


def scan_columns(db: sqlite3.Connection) -> list[str]:
    """The ``scans`` table's columns in this file (older files have fewer)."""
    return [str(r[1]) for r in db.execute("PRAGMA table_info(scans)")]


def schema_problem(db: sqlite3.Connection) -> str:
    """What is wrong with the file's schema ('' when nothing), for the check at open.

    ``quick_check`` parses the schema but does not know ours: a flipped byte in
    a column name or in the state CHECK leaves a file that passes it while every
    lease (no such column) or every scan (CHECK failed) fails, forever.  So the
    schema text must be UTF-8, each table present must have its columns, and the
    state CHECK must still name the states.
    """
    text_factory = db.text_factory
    db.text_factory = bytes
    try:
        objects = db.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
        try:
            schema = {
                (bytes(t).decode(), bytes(n).decode()): bytes(s or b"").decode()
                for t, n, s in objects
            }
        except UnicodeDecodeError:
            return "the schema text is not UTF-8"
        for table, required in _REQUIRED_COLUMNS.items():
            if ("table", table) not in schema:
                continue
            names = set()
            for row in db.execute(f"PRAGMA table_info({table})"):
                try:
                    names.add(bytes(row[1]).decode())
                except UnicodeDecodeError:
                    return f"a column name of {table} is not UTF-8"
            if missing := required - names:
                return f"table {table} lacks columns {sorted(missing)}"
    finally:
        db.text_factory = text_factory
    scans = schema.get(("table", "scans"), "")
    if scans and not all(s in scans for s in _STATE_LITERALS):
        return "the state rule of table scans is damaged"
    return ""


def row_content(columns: Sequence[str], values: Sequence[object]) -> bytes:
    """A row's columns as bytes for forensics: ``name=value`` joined by ``\\x1f``."""
    parts = []
    for name, v in zip(columns, values, strict=True):
        raw = b"NULL" if v is None else v if isinstance(v, bytes) else str(v).encode()
        parts.append(name.encode() + b"=" + raw)
    return b"\x1f".join(parts)


def read_rows(
    db: sqlite3.Connection,
    where: str,
    params: Sequence[object] = (),
    *,
    columns: Sequence[str] | None = None,
    limit: int = -1,
    with_row_state: bool = False,
) -> RowRead:
    """The ``scans`` rows matching ``where`` in seq order, each decoded and checked alone.

    A row is damaged when a text column is not UTF-8, a column holds a blob
    (none ever does), a value has the wrong type, its state is none of :data:`VALID_STATES`, or its checksum (when it
    has one) does not match its fields.  ``columns`` defaults to the file's own
    (so older files can be read for salvage); ``limit`` -1 means all.
    ``with_row_state`` adds each row's :class:`~scanner_agent.outbox.RowState`
    as ``row_state`` (this build's schema only).
    """
    cols = list(columns) if columns is not None else scan_columns(db)
    extra = [f"CAST({row_state_sql()} AS BLOB)"] if with_row_state else []
    # The columns stored as blobs, which no scans column ever holds: a flipped bit in a record
    # header turns a text into a blob with the same bytes (and checksum), and the lease's JSON
    # functions refuse a blob.
    blobs = " || ".join(f"CASE WHEN typeof({c}) = 'blob' THEN '{c} ' ELSE '' END" for c in cols)
    select = ", ".join(
        [f"CASE WHEN typeof({c}) = 'text' THEN CAST({c} AS BLOB) ELSE {c} END" for c in cols]
        + extra
        + [f"CAST({blobs} AS BLOB)"]
    )
    cur = db.execute(
        f"SELECT {select} FROM scans WHERE {where} ORDER BY seq LIMIT ?",  # noqa: S608
        [*params, limit],
    )
    good: list[dict[str, Any]] = []
    damaged: list[DamagedRow] = []
    checked = [c for c in CHECKED_FIELDS if c in cols]
    for *raw, blob in cur:
        row: dict[str, Any] = {}
        problem = f"{bytes(blob).split()[0].decode()} is a blob, not text" if blob else ""
        for name, v in zip([*cols, "row_state"][: len(raw)], raw, strict=True):
            if isinstance(v, bytes):
                try:
                    v = v.decode()
                except UnicodeDecodeError:
                    problem = problem or f"{name} is not UTF-8"
            row[name] = v
        seq = row.get("seq")
        if not isinstance(seq, int):
            continue  # a rowid is always an integer: SQLite itself would have failed
        if not problem:
            problem = _check(row, checked)
        if problem:
            damaged.append(DamagedRow(seq, problem, row_content(cols, raw[: len(cols)])))
        else:
            good.append(row)
    return RowRead(good, damaged)


def row_problem(row: dict[str, Any]) -> str:
    """What is wrong with a row of text and numbers read some other way ('' when nothing).

    The checks of :func:`read_rows` (a text column holding bytes is not UTF-8),
    for rows salvage reads straight from the file's pages.
    """
    for name, v in row.items():
        if isinstance(v, bytes):
            return f"{name} is not UTF-8 text"
    return _check(row, [c for c in CHECKED_FIELDS if c in row])


def _check(row: dict[str, Any], checked: Sequence[str]) -> str:
    """What is wrong with a decoded row ('' when nothing)."""
    state = row.get("state")
    if state not in VALID_STATES:
        return f"state {state!r} is not a state"
    for name in checked:
        v = row[name]
        if v is not None and not isinstance(v, str):
            return f"{name} is {type(v).__name__}, not text"
    crc = row.get("crc")
    if crc is None:
        return ""  # written before checksums (migration 8) and already delivered
    if not isinstance(crc, int) or crc != text_checksum([row[c] for c in CHECKED_FIELDS]):
        return "checksum mismatch"
    return ""


def quarantine(db: sqlite3.Connection, damaged: Sequence[DamagedRow], found_at: str) -> list[str]:
    """Move ``damaged`` rows to quarantine (in the caller's transaction); their batches' ids.

    A batch that held one is returned so the caller can dissolve it: the same
    batch id must always carry the same events.
    """
    if not damaged:
        return []
    marks = ", ".join("?" * len(damaged))
    seqs = [d.seq for d in damaged]
    batches = [
        b.decode()
        for (b,) in db.execute(
            f"SELECT DISTINCT CAST(batch_id AS BLOB) FROM scans WHERE seq IN ({marks}) "  # noqa: S608
            "AND batch_id IS NOT NULL",
            seqs,
        )
        if isinstance(b, bytes) and _is_text(b)
    ]
    db.executemany(
        "INSERT OR REPLACE INTO quarantine (seq, found_at, problem, content) VALUES (?, ?, ?, ?)",
        [(d.seq, found_at, d.problem, d.content) for d in damaged],
    )
    db.execute(
        f"UPDATE scans SET state = 'quarantined', batch_id = NULL WHERE seq IN ({marks})",  # noqa: S608
        seqs,
    )
    return batches


def _is_text(b: bytes) -> bool:
    try:
        b.decode()
    except UnicodeDecodeError:
        return False
    return True
