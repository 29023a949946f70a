"""The reference trace service's SQLite store: batches with their first reply, events once each.

One writer connection behind a lock does every ingest in a single
``BEGIN IMMEDIATE`` transaction: look up the batch id (replay?), then one
``executemany`` of ``INSERT OR IGNORE`` for all valid events.  When no row was
ignored nothing was held before, and the batch is done; otherwise that insert
is rolled back to a savepoint and each event is classified against one
look-up of held event ids and one of held codes.  Either way the cost per
batch is a handful of SQLite calls whatever its size.  Reads use a second
connection, which in WAL mode sees the last committed state without waiting
for a writer.

Both connections are opened with ``check_same_thread=False`` and used from
the web server's worker threads, each only while holding its own lock.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self

from scanner_agent.sqlrows import max_rows, padded_params, select_list, values_clause
from scanner_agent.traceserver._protocol import (
    EventRow,
    ProtocolError,
    event_problems,
    fingerprint,
    parse_batch,
)

__all__ = ["EVENT_COLUMNS", "TraceStore", "error_body"]

log = logging.getLogger("scanner_agent.traceserver")

SCHEMA_VERSION: Final = 1

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
"""

_SELECT_EVENTS = (
    "SELECT seq, event_id, code, scheme, action, bill, scanned_at, source,"
    " device_id, batch_id, received_at FROM events"
)
_INSERT_EVENT = (
    "INSERT INTO events (event_id, code, scheme, action, bill, scanned_at, source,"
    " device_id, batch_id, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_EVENT_FIELDS = 10
_CHUNK_ROWS = max_rows(_EVENT_FIELDS)


@functools.cache
def _insert_or_ignore_sql(rows: int) -> str:
    """``INSERT OR IGNORE`` of ``rows`` events in one statement (see :mod:`scanner_agent.sqlrows`).

    One statement is one ``sqlite3_step``, where ``executemany`` is one per
    row, each giving the GIL up to the event loop thread that parses the next
    request and having to win it back.
    """
    columns = _INSERT_EVENT[_INSERT_EVENT.index("(") : _INSERT_EVENT.index(")") + 1]
    return (
        f"INSERT OR IGNORE INTO events {columns} SELECT {select_list(_EVENT_FIELDS)} "
        f"FROM {values_clause(rows, _EVENT_FIELDS)}"
    )


def _insert_or_ignore(conn: sqlite3.Connection, rows: Sequence[tuple[str | None, ...]]) -> int:
    """Insert ``rows`` (skipping any whose event or identity is held); how many went in."""
    inserted = 0
    for start in range(0, len(rows), _CHUNK_ROWS):
        size, params = padded_params(rows[start : start + _CHUNK_ROWS], _EVENT_FIELDS)
        inserted += conn.execute(_insert_or_ignore_sql(size), params).rowcount
    return inserted


Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


def error_body(message: str) -> bytes:
    """The JSON body of every error reply: ``{"error": message}``."""
    return _dumps({"error": message})


def _dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


class TraceStore:
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
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(
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

    def ingest_batch(
        self,
        batch_id: str,
        body_hash: str | None,
        payload: object,
        *,
        reject_codes: frozenset[str] = frozenset(),
        max_events: int = 50_000,
    ) -> tuple[int, bytes]:
        """Validate and store one decoded ``POST /v1/batches`` body; return ``(status, reply)``.

        ``batch_id`` is the request's ``Idempotency-Key``; ``body_hash`` identifies
        the body for replay detection (None: the canonical :func:`fingerprint`).
        Statuses: 200 with the results (the stored first reply on a replay),
        400 for a malformed batch or a key that differs from the body's
        ``batch_id``, 422 for a known key with a different body.
        """
        try:
            batch = parse_batch(payload, max_events=max_events)
        except ProtocolError as exc:
            return exc.status, error_body(exc.message)
        if batch.batch_id != batch_id:
            return 400, error_body("Idempotency-Key does not match the body's batch_id")
        digest = fingerprint(batch) if body_hash is None else body_hash
        problems = event_problems(batch.events, reject_codes)  # pure: outside the lock
        received_at = _utc_now()

        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT body_hash, reply FROM batches WHERE batch_id = ?", (batch_id,)
                ).fetchone()
                if row is not None:
                    conn.execute("ROLLBACK")
                    if row[0] == digest:
                        log.debug("batch %s: replay, first reply returned", batch_id)
                        return 200, bytes(row[1])
                    return 422, error_body(
                        f"batch {batch_id} was already received with a different body"
                    )
                tail = (batch.device_id, batch_id, received_at)
                verdicts, stored = _store_events(conn, batch.events, problems, tail)
                reply = _dumps({"batch_id": batch_id, "results": verdicts})
                conn.execute(
                    "INSERT INTO batches (batch_id, body_hash, device_id, sent_at, received_at,"
                    " event_count, reply) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        batch_id,
                        digest,
                        batch.device_id,
                        batch.sent_at,
                        received_at,
                        len(problems),
                        reply,
                    ),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        if log.isEnabledFor(logging.DEBUG):
            counts = Counter(str(verdict["status"]) for verdict in verdicts)
            log.debug(
                "batch %s from %s: %d events, %d accepted (%d new), %d duplicate, %d rejected",
                batch_id,
                batch.device_id,
                len(verdicts),
                counts["accepted"],
                stored,
                counts["duplicate"],
                counts["rejected"],
            )
        return 200, reply

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


_Verdict = dict[str, str | None]


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
    problems: list[str | None],
    tail: tuple[str, str, str],
) -> tuple[list[_Verdict], int]:
    """Insert a batch's new events (inside the write transaction); verdicts in order, count stored.

    Fast path: try to insert every valid event with ``INSERT OR IGNORE``; when
    none is ignored there was no held event id and no held (code, action,
    bill), so all of them are new.  Otherwise undo that and classify each event
    against what the store holds.  An event id already held is ``accepted``
    even if the event would now be refused: the service has it.
    """
    valid = [event + tail for event, problem in zip(events, problems, strict=True) if not problem]
    conn.execute("SAVEPOINT fast_path")
    inserted = _insert_or_ignore(conn, valid)
    if inserted == len(valid):
        conn.execute("RELEASE fast_path")
        refused = [event[0] for event, problem in zip(events, problems, strict=True) if problem]
        held = _held(conn, refused)
        verdicts: list[_Verdict] = []
        for event, problem in zip(events, problems, strict=True):
            event_id = event[0]
            if problem is None or event_id in held:
                verdicts.append({"event_id": event_id, "status": "accepted", "reason": None})
            else:
                verdicts.append({"event_id": event_id, "status": "rejected", "reason": problem})
        return verdicts, inserted
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
    verdicts = []
    rows: list[tuple[str, ...]] = []
    for event, problem in zip(events, problems, strict=True):
        event_id, code, _scheme, action, bill, _scanned_at, _source = event
        if event_id in held:
            # Already held (e.g. the agent re-split a batch after a crash): the
            # service has it, so it is accepted again and not stored twice.
            verdicts.append({"event_id": event_id, "status": "accepted", "reason": None})
        elif problem is not None:
            verdicts.append({"event_id": event_id, "status": "rejected", "reason": problem})
        elif (holder := holders.get((code, action, bill))) is not None:
            reason = f"code already recorded for this action and bill by event {holder}"
            verdicts.append({"event_id": event_id, "status": "duplicate", "reason": reason})
        else:
            holders[code, action, bill] = event_id
            rows.append(event + tail)
            verdicts.append({"event_id": event_id, "status": "accepted", "reason": None})
    if rows:
        conn.executemany(_INSERT_EVENT, rows)
    return verdicts, len(rows)
