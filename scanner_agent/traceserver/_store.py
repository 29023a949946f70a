"""The reference trace service's SQLite store: batches with their first reply, events once each.

One writer connection behind a lock does every ingest in a single
``BEGIN IMMEDIATE`` transaction: look up the batch id (replay?), then one
multi-row ``INSERT OR IGNORE`` for all valid events.  When no row was
ignored nothing was held before, and the batch is done; otherwise that insert
is rolled back to a savepoint and each event is classified against one
look-up of held event ids and one of held codes.  Either way the cost per
batch is a handful of SQLite calls whatever its size.  Reads use a second
connection, which in WAL mode sees the last committed state without waiting
for a writer.

The per-event work is what a drain of the agent's backlog pays for (measured
with callgrind, instructions per event): the agent's compact bodies are read
by a regex instead of ``json.loads`` (:func:`decode_batch`), a batch of good
events is cleared by whole-batch checks (:func:`refusals`), the fingerprint
and the reply of such a batch are joined from its strings instead of encoded,
and the insert binds the batch's own fields once instead of once per event.

Both connections are opened with ``check_same_thread=False`` and used from
the web server's worker threads, each only while holding its own lock.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from itertools import chain, repeat
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self

from scanner_agent.sqlrows import MAX_VARIABLES, SIZE_STEP, size_class
from scanner_agent.traceserver._ingest import (
    BatchStore,
    SchemaMismatch,
    Stored,
    Verdicts,
    classify,
    error_body,
    replayed,
    reply_for,
)
from scanner_agent.traceserver._protocol import Batch, EventRow
from scanner_agent.traceserver._tokens import SQLITE, device_for

__all__ = ["EVENT_COLUMNS", "TraceStore", "error_body"]

log = logging.getLogger("scanner_agent.traceserver")

SCHEMA_VERSION: Final = 2
"""1: batches and events; 2: device_tokens (one credential per dock, :mod:`._tokens`)."""

EVENT_COLUMNS: Final[tuple[str, ...]] = (
    "event_id",
    "code",
    "scheme",
    "action",
    "bill",
    "scanned_at",
    "source",
    "device_id",
    "batch_id",
    "received_at",
)
"""Fields of a stored event as ``GET /v1/events`` and ``GET /v1/codes/{code}`` return it."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id     TEXT PRIMARY KEY,
    body_hash    TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    sent_at      TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    event_count  INTEGER NOT NULL,
    reply        BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    code         TEXT NOT NULL,
    scheme       TEXT NOT NULL,
    action       TEXT NOT NULL,
    bill         TEXT NOT NULL,
    scanned_at   TEXT NOT NULL,
    source       TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    batch_id     TEXT NOT NULL,
    received_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_code_action_bill ON events (code, action, bill);
CREATE TABLE IF NOT EXISTS device_tokens (
    token_id       TEXT PRIMARY KEY,
    device_id      TEXT NOT NULL,
    secret_sha256  BLOB NOT NULL,
    created_at     TEXT NOT NULL,
    revoked_at     TEXT
);
"""

_SELECT_EVENTS = (
    "SELECT seq, event_id, code, scheme, action, bill, scanned_at, source,"
    " device_id, batch_id, received_at FROM events"
)
_INSERT_EVENT = (
    "INSERT INTO events (event_id, code, scheme, action, bill, scanned_at, source,"
    " device_id, batch_id, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_ROW_FIELDS = 7
"""Parameters bound per event: its seven wire fields (the batch's three are bound once)."""
_CHUNK_ROWS = (MAX_VARIABLES - 3) // _ROW_FIELDS // SIZE_STEP * SIZE_STEP
"""Most events per statement: a size class whose parameters fit SQLite's limit."""


@functools.cache
def _insert_or_ignore_sql(rows: int) -> str:
    """``INSERT OR IGNORE`` of ``rows`` events in one statement, the batch's fields bound once.

    One statement is one ``sqlite3_step``, where ``executemany`` is one per
    row, each giving the GIL up to the event loop thread that parses the next
    request and having to win it back.  ``device_id``, ``batch_id`` and
    ``received_at`` are the same in every row, so they are ``?1``-``?3`` in
    each row (SQLite numbers the plain ``?`` after them from 4) instead of
    being bound again per event: a bound text costs a copy and an allocation.
    A plain ``VALUES`` list (no ``SELECT … FROM (VALUES …) WHERE``, as
    :mod:`scanner_agent.sqlrows` writes it) is read straight into the insert's
    registers; the subquery form deep-copies every value once more.  So the
    padding up to the size class (see :func:`scanner_agent.sqlrows.size_class`)
    repeats the first event instead of being filtered out: ``OR IGNORE`` drops
    each copy, as that event is either stored by then or held already.
    """
    row = "(?1, ?2, ?3, " + ", ".join("?" * _ROW_FIELDS) + ")"
    return (
        "INSERT OR IGNORE INTO events (device_id, batch_id, received_at, event_id, code,"
        " scheme, action, bill, scanned_at, source) VALUES " + ", ".join([row] * rows)
    )


def _insert_or_ignore(
    conn: sqlite3.Connection, rows: Sequence[EventRow], tail: tuple[str, str, str]
) -> int:
    """Insert ``rows`` (skipping any whose event or identity is held); how many went in."""
    inserted = 0
    for start in range(0, len(rows), _CHUNK_ROWS):
        chunk = rows[start : start + _CHUNK_ROWS]
        size = size_class(len(chunk))
        params: list[str] = [*tail]
        params += chain.from_iterable(chunk)
        params += chain.from_iterable(repeat(chunk[0], size - len(chunk)))
        inserted += conn.execute(_insert_or_ignore_sql(size), params).rowcount
    return inserted


Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


FILE_MODE: Final = 0o640
"""A new store's mode, whatever the umask: it holds the docks' token hashes and every event
(the agent's outbox uses the same).  SQLite gives the ``-wal`` and ``-shm`` the file's mode."""


def _create(path: str) -> None:
    """Create ``path`` empty with :data:`FILE_MODE` (never through a symlink) unless it exists."""
    if path == ":memory:":
        return
    try:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
        )
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)  # the umask took bits off the mode given to open
    finally:
        os.close(fd)


def _connect(path: str, synchronous: Synchronous, *, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    else:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal" and path != ":memory:":
            log.warning("trace store %s: journal_mode is %s, not WAL", path, mode)
        conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


def _in_json(values: Iterable[str]) -> str:
    """One bound parameter for ``IN (SELECT value FROM json_each(?))``: no variable limit."""
    return json.dumps(list(values))


class TraceStore(BatchStore):
    """Batches and events held by the reference trace service, in one SQLite file.

    ``synchronous`` is SQLite's durability level in WAL mode: with ``NORMAL``
    (default) an acknowledged batch survives a crash of the server process but
    not a power cut; ``FULL`` also survives a power cut, at one fsync per batch.
    """

    def __init__(self, path: str | Path, *, synchronous: Synchronous = "NORMAL") -> None:
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self._path = str(path)
        self._write_lock = threading.Lock()
        _create(self._path)
        self._writer = _connect(self._path, synchronous, readonly=False)
        try:
            self._create_schema()
        except BaseException:
            self._writer.close()
            raise
        if self._path == ":memory:":
            # A second connection would open a different, empty database.
            self._reader = self._writer
            self._read_lock = self._write_lock
        else:
            self._reader = _connect(self._path, synchronous, readonly=True)
            self._read_lock = threading.Lock()
        self._closed = False

    # -- lifecycle ------------------------------------------------------------

    @property
    def path(self) -> str:
        """The database file (or ``:memory:``)."""
        return self._path

    def close(self) -> None:
        """Close both connections; idempotent."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._writer.close()
            if self._reader is not self._writer:
                with self._read_lock:
                    self._reader.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _create_schema(self) -> None:
        conn = self._writer
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        # Every statement is IF NOT EXISTS: running them all brings an older version up.
        if not 0 <= version <= SCHEMA_VERSION:
            raise SchemaMismatch(
                f"trace store {self._path}: schema version {version}, expected {SCHEMA_VERSION}"
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Not executescript(): it COMMITs first, outside this transaction.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- ingest ---------------------------------------------------------------

    def _store_batch(
        self, batch: Batch, digest: str, refused: dict[int, str], received_at: str
    ) -> Stored:
        """One ``BEGIN IMMEDIATE`` transaction: a replay's answer, or the batch stored."""
        batch_id = batch.batch_id
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT body_hash, reply FROM batches WHERE batch_id = ?", (batch_id,)
                ).fetchone()
                if row is not None:
                    conn.execute("ROLLBACK")
                    return replayed(batch_id, digest, row[0], bytes(row[1]))
                tail = (batch.device_id, batch_id, received_at)
                others, stored = _store_events(conn, batch.events, refused, tail)
                reply = reply_for(batch, others)
                conn.execute(
                    "INSERT INTO batches (batch_id, body_hash, device_id, sent_at, received_at,"
                    " event_count, reply) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        batch_id,
                        digest,
                        batch.device_id,
                        batch.sent_at,
                        received_at,
                        len(batch.events),
                        reply,
                    ),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return 200, reply, others, stored

    def device_for_token(self, token: str) -> str | None:
        """The device of the live dock token ``token`` (:mod:`._tokens`), or None.

        Read on the reader connection: a revocation committed by ``trace-server
        token revoke`` is seen by the next request.
        """
        with self._read_lock:
            return device_for(self._reader, token, SQLITE)

    # -- reads ----------------------------------------------------------------

    def events_for_code(self, code: str) -> list[dict[str, str]]:
        """Every stored event for ``code``, in the order received."""
        with self._read_lock:
            rows = self._reader.execute(
                _SELECT_EVENTS + " WHERE code = ? ORDER BY seq", (code,)
            ).fetchall()
        return [dict(zip(EVENT_COLUMNS, row[1:], strict=True)) for row in rows]

    def events_after(
        self, after: int = 0, limit: int = 1000
    ) -> tuple[list[dict[str, str]], int | None]:
        """Up to ``limit`` events received after sequence number ``after``, oldest first.

        Returns the events and the sequence number of the last one (the cursor
        for the next call), or None when there are no events after ``after``.
        """
        if after < 0 or limit < 1:
            raise ValueError("after must be >= 0 and limit >= 1")
        with self._read_lock:
            rows = self._reader.execute(
                _SELECT_EVENTS + " WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()
        events = [dict(zip(EVENT_COLUMNS, row[1:], strict=True)) for row in rows]
        return events, (rows[-1][0] if rows else None)

    def batch_reply(self, batch_id: str) -> bytes | None:
        """The stored first reply to ``batch_id``, or None if the batch is unknown."""
        with self._read_lock:
            row = self._reader.execute(
                "SELECT reply FROM batches WHERE batch_id = ?", (batch_id,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def count_events(self) -> int:
        """How many events the store holds."""
        with self._read_lock:
            return int(self._reader.execute("SELECT count(*) FROM events").fetchone()[0])

    def count_batches(self) -> int:
        """How many batches the store has answered (and keeps the reply of)."""
        with self._read_lock:
            return int(self._reader.execute("SELECT count(*) FROM batches").fetchone()[0])


def _held(conn: sqlite3.Connection, event_ids: list[str]) -> set[str]:
    """Which of ``event_ids`` the store already holds."""
    if not event_ids:
        return set()
    cursor = conn.execute(
        "SELECT event_id FROM events WHERE event_id IN (SELECT value FROM json_each(?))",
        (_in_json(event_ids),),
    )
    return {row[0] for row in cursor}


def _store_events(
    conn: sqlite3.Connection,
    events: list[EventRow],
    refused: dict[int, str],
    tail: tuple[str, str, str],
) -> tuple[Verdicts, int]:
    """Insert a batch's new events (inside the write transaction); the verdicts other than
    ``accepted`` by index, and how many events were stored.

    Fast path: try to insert every valid event with ``INSERT OR IGNORE``; when
    none is ignored there was no held event id and no held (code, action,
    bill), so all of them are new.  Otherwise undo that and classify each event
    against what the store holds.  An event id already held is ``accepted``
    even if the event would now be refused: the service has it.
    """
    if refused:
        valid = [event for index, event in enumerate(events) if index not in refused]
    else:
        valid = events
    conn.execute("SAVEPOINT fast_path")
    inserted = _insert_or_ignore(conn, valid, tail) if valid else 0
    if inserted == len(valid):
        conn.execute("RELEASE fast_path")
        held = _held(conn, [events[index][0] for index in refused])
        others = {
            index: ("rejected", reason)
            for index, reason in refused.items()
            if events[index][0] not in held
        }
        return others, inserted
    conn.execute("ROLLBACK TO fast_path")
    conn.execute("RELEASE fast_path")

    held = _held(conn, [event[0] for event in events])
    holders: dict[tuple[str, str, str], str] = {}
    codes = {event[1] for event in valid}
    if codes:
        for held_code, held_action, held_bill, held_by in conn.execute(
            "SELECT code, action, bill, event_id FROM events"
            " WHERE code IN (SELECT value FROM json_each(?))",
            (_in_json(codes),),
        ):
            holders[held_code, held_action, held_bill] = held_by
    others, rows = classify(events, refused, held, holders)
    if rows:
        conn.executemany(_INSERT_EVENT, [row + tail for row in rows])
    return others, len(rows)
