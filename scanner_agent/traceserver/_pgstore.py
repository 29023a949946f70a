"""The trace service's PostgreSQL store: the same Trace API v1 answers as the SQLite one.

Ingests run side by side, in every worker process, with no lock shared by all
of them.  Each is one READ COMMITTED transaction:

1. an advisory lock on the batch id alone (:data:`_LOCK_BATCH`), so copies of
   one batch arriving at two workers at once are decided once: the second
   waits for the first to commit, then finds its row and replays its reply;
2. the batch id is looked up (a replay, or 422 for another body), then the
   batch's event ids and codes in ``event_keys`` (one query);
3. the events are classified (:func:`~scanner_agent.traceserver._ingest.classify`,
   shared with SQLite) and the new ones written with two ``COPY``\\ s, then the
   batch and its reply.

Two different batches holding the same event id or code (an agent re-splitting
a batch after a crash, two docks reading one code) may both classify it as new;
``event_keys``' unique indexes then stop the second at its ``COPY`` (it waits
for the first to commit), and the whole transaction is run again
(:data:`_ATTEMPTS`), now seeing the first's rows: the verdicts are those of a
serial order, each event and code stored once.  A deadlock between two such
batches is resolved the same way.

The feed (``GET /v1/events``) cannot follow ``seq`` alone: ``seq`` values are
drawn from a sequence during the transaction, so side-by-side ingests commit
them out of order, and a reader that had paged past ``seq`` 105 would never be
handed 100 committing afterwards.  Each event row carries its transaction's
``xid`` (``xid8``: 64 bits, never wraps) and the feed runs in ``(xid, seq)``
order, showing only rows whose ``xid`` is below the reading statement's
snapshot ``xmin`` (``pg_snapshot_xmin(pg_current_snapshot())``: every
transaction below it has ended).  Any transaction still to commit has an
``xid`` at or above that ``xmin`` (it was running, or had no ``xid`` yet and
will get a higher one), so it lands after everything already handed out: the
cursor never skips.  The price: a row shows in the feed only once every write
transaction of the cluster that began before it has ended (milliseconds for
ingests; a long write transaction elsewhere in the cluster holds the feed back
until it ends).  The cursor stays an integer: the ``seq`` of the last event
handed out, whose ``(xid, seq)`` is looked up to resume.

Connections come from a small pool, each used by one thread at a time; one
that fails is closed, not reused.  The schema is ``trace-server migrate``'s
(:mod:`._pgschema`); a database at another version is refused at open.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from operator import itemgetter
from types import TracebackType
from typing import Final, Self
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors

from scanner_agent.traceserver._ingest import (
    BatchStore,
    DatabaseError,
    Holders,
    SchemaMismatch,
    Stored,
    classify,
    replayed,
    reply_for,
)
from scanner_agent.traceserver._pgschema import SCHEMA_VERSION, connect, schema_version
from scanner_agent.traceserver._protocol import Batch, EventRow
from scanner_agent.traceserver._store import EVENT_COLUMNS

__all__ = ["PgTraceStore", "redact_url"]

log = logging.getLogger("scanner_agent.traceserver")

_LOCK_BATCH: Final = 0x5343_414E
"""Advisory lock class ("SCAN") of the per-batch locks: ``(class, hashtext(batch_id))``, a key
space apart from the single-``bigint`` keys of :mod:`._pgschema`."""

_ATTEMPTS: Final = 8
"""Runs of one ingest transaction before its conflict is raised: each rerun follows another
batch's commit of the same event id or code, which the rerun then sees."""

_RETRY: Final = (errors.UniqueViolation, errors.DeadlockDetected)
_UNAVAILABLE: Final = (psycopg.OperationalError, errors.ReadOnlySqlTransaction)
"""The database down, restarting, refusing connections, or read-only (a replica): not this
request's fault, and over by itself (a deadlock still there after every rerun is one too)."""

_KEY_FIELDS: Final = itemgetter(0, 1, 3, 4)
"""An event row's ``event_keys`` columns: ``event_id``, ``code``, ``action``, ``bill``."""

_RECEIVED_AT: Final = """to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""
_SELECT_EVENTS: Final = (
    "SELECT seq, event_id, code, scheme, action, bill, scanned_at, source, device_id,"
    f" batch_id, {_RECEIVED_AT} FROM events"
)

Connection = psycopg.Connection[tuple[object, ...]]


def redact_url(url: str) -> str:
    """``url`` without its password, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _bytes(value: object) -> bytes:
    """A ``bytea`` column's value (psycopg gives ``bytes``)."""
    if not isinstance(value, bytes | memoryview):
        raise TypeError(f"expected bytea, got {type(value).__name__}")
    return bytes(value)


class _Pool:
    """At most ``size`` connections to ``url``, made when first needed, one thread each."""

    def __init__(self, url: str, size: int) -> None:
        self._url = url
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._all: set[Connection] = set()
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A pooled connection; the database's unavailability becomes :class:`DatabaseError`
        (the app answers it 503 with Retry-After: a client retries, nothing was stored)."""
        try:
            with self._checkout() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise DatabaseError(f"database unavailable: {' '.join(str(exc).split())}") from exc

    @contextmanager
    def _checkout(self) -> Iterator[Connection]:
        self._slots.acquire()
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = connect(self._url)
                with self._lock:
                    self._all.add(conn)
            try:
                yield conn
            except BaseException:
                if conn.closed or conn.broken:
                    self._discard(conn)
                    conn = None  # type: ignore[assignment]
                raise
            finally:
                if conn is not None:
                    self._idle.put(conn)
        finally:
            self._slots.release()

    def _discard(self, conn: Connection) -> None:
        with self._lock:
            self._all.discard(conn)
        conn.close()

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, set()
        for conn in conns:
            conn.close()


class PgTraceStore(BatchStore):
    """Batches and events held by the trace service in a PostgreSQL database at ``url``.

    ``pool_size`` bounds the connections this process opens (the web server's
    worker threads share them).  Raises SchemaMismatch when the database is not
    at :data:`~._pgschema.SCHEMA_VERSION` (run ``trace-server migrate``).
    """

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self._url = url
        with connect(url) as conn:
            version = schema_version(conn)
        if version != SCHEMA_VERSION:
            raise SchemaMismatch(
                f"trace store {redact_url(url)}: schema version {version}, expected "
                f"{SCHEMA_VERSION}: run `scanner-agent trace-server migrate --db URL`"
            )
        self._pool = _Pool(url, pool_size)

    @property
    def path(self) -> str:
        """The database's URI, without its password."""
        return redact_url(self._url)

    def close(self) -> None:
        """Close every pooled connection; idempotent."""
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- ingest ---------------------------------------------------------------

    def _store_batch(
        self, batch: Batch, digest: str, refused: dict[int, str], received_at: str
    ) -> Stored:
        """One transaction: a replay's answer, or the batch stored; rerun after a conflict."""
        with self._pool.connection() as conn:
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    with conn.transaction():
                        return self._store_once(conn, batch, digest, refused, received_at)
                except _RETRY as exc:
                    if attempt == _ATTEMPTS:
                        raise
                    log.debug("batch %s: %s, run again", batch.batch_id, type(exc).__name__)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _store_once(
        self,
        conn: Connection,
        batch: Batch,
        digest: str,
        refused: dict[int, str],
        received_at: str,
    ) -> Stored:
        """The body of one ingest transaction (see the module's docstring)."""
        events = batch.events
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s::integer, hashtext(%s))", (_LOCK_BATCH, batch.batch_id)
        )
        row = conn.execute(
            "SELECT body_hash, reply FROM batches WHERE batch_id = %s", (batch.batch_id,)
        ).fetchone()
        if row is not None:
            return replayed(batch.batch_id, digest, str(row[0]), _bytes(row[1]))
        ids = [event[0] for event in events]
        codes = list({event[1] for index, event in enumerate(events) if index not in refused})
        wanted = set(ids)
        held: set[str] = set()
        holders: Holders = {}
        # The lists travel as JSON text: psycopg dumps a list element by element in
        # Python (1.1 ms of CPU for a batch of 500), json.dumps in one C call.
        for event_id, code, action, bill in conn.execute(
            "SELECT event_id, code, action, bill FROM event_keys"
            " WHERE event_id = ANY(ARRAY(SELECT json_array_elements_text(%s::json)))"
            " OR code = ANY(ARRAY(SELECT json_array_elements_text(%s::json)))",
            (json.dumps(ids), json.dumps(codes)),
        ):
            if event_id in wanted:
                held.add(str(event_id))
            holders[str(code), str(action), str(bill)] = str(event_id)
        others, rows = classify(events, refused, held, holders)
        if rows:
            self._copy(conn, batch, rows, received_at)
        reply = reply_for(batch, others)
        conn.execute(
            "INSERT INTO batches (batch_id, body_hash, device_id, sent_at, received_at,"
            " event_count, reply) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                batch.batch_id,
                digest,
                batch.device_id,
                batch.sent_at,
                received_at,
                len(events),
                reply,
            ),
        )
        return 200, reply, others, len(rows)

    @staticmethod
    def _copy(conn: Connection, batch: Batch, rows: list[EventRow], received_at: str) -> None:
        """Write the new events and their keys with ``COPY`` (the fastest bulk path measured).

        A plain batch (:attr:`Batch.plain_json`: no backslash nor control character in
        any string, its ids included) is already valid ``COPY`` text once its fields are
        joined by tabs and its rows by newlines, so it is sent as two strings; any other
        batch goes row by row through psycopg, which escapes.
        """
        cursor = conn.cursor()
        keys_sql = "COPY event_keys (event_id, code, action, bill) FROM STDIN"
        events_sql = (
            "COPY events (event_id, code, scheme, action, bill, scanned_at, source,"
            " device_id, batch_id, received_at) FROM STDIN"
        )
        if batch.plain_json is not None:
            tail = f"\t{batch.device_id}\t{batch.batch_id}\t{received_at}\n"
            with cursor.copy(keys_sql) as copy:
                copy.write("\n".join(map("\t".join, map(_KEY_FIELDS, rows))) + "\n")
            with cursor.copy(events_sql) as copy:
                copy.write(tail.join(map("\t".join, rows)) + tail)
            return
        with cursor.copy(keys_sql) as copy:
            for row in rows:
                copy.write_row(_KEY_FIELDS(row))
        end = (batch.device_id, batch.batch_id, received_at)
        with cursor.copy(events_sql) as copy:
            for row in rows:
                copy.write_row(row + end)

    def device_for_token(self, token: str) -> str | None:
        """The device of the live dock token ``token`` (:mod:`._tokens`), or None."""
        from scanner_agent.traceserver._tokens import device_for

        with self._pool.connection() as conn:
            return device_for(conn, token)

    # -- reads ----------------------------------------------------------------

    def _select(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        with self._pool.connection() as conn:
            return conn.execute(sql.encode(), params).fetchall()

    def events_for_code(self, code: str) -> list[dict[str, str]]:
        """Every stored event for ``code``, in the order received."""
        rows = self._select(_SELECT_EVENTS + " WHERE code = %s ORDER BY seq", (code,))
        return [dict(zip(EVENT_COLUMNS, map(str, row[1:]), strict=True)) for row in rows]

    def events_after(
        self, after: int = 0, limit: int = 1000
    ) -> tuple[list[dict[str, str]], int | None]:
        """Up to ``limit`` events after the cursor ``after``, in feed order, and the next cursor.

        The feed order is ``(xid, seq)`` and holds only rows older than every write
        transaction still running (the module's docstring says why).  ``after`` is the
        ``seq`` of the last event handed out; a ``seq`` no longer held (its partition
        dropped) resumes after the nearest older one held, or from the start.
        """
        if after < 0 or limit < 1:
            raise ValueError("after must be >= 0 and limit >= 1")
        with self._pool.connection() as conn:
            at = conn.execute(
                "SELECT xid::text, seq FROM events WHERE seq <= %s ORDER BY seq DESC LIMIT 1",
                (after,),
            ).fetchone()
            xid, seq = (str(at[0]), int(str(at[1]))) if at else ("0", 0)
            rows = conn.execute(
                _SELECT_EVENTS + " WHERE (xid, seq) > (%s::xid8, %s)"
                " AND xid < pg_snapshot_xmin(pg_current_snapshot())"
                " ORDER BY xid, seq LIMIT %s",
                (xid, seq, limit),
            ).fetchall()
        events = [dict(zip(EVENT_COLUMNS, map(str, row[1:]), strict=True)) for row in rows]
        return events, (int(str(rows[-1][0])) if rows else None)

    def batch_reply(self, batch_id: str) -> bytes | None:
        """The stored first reply to ``batch_id``, or None if the batch is unknown."""
        rows = self._select("SELECT reply FROM batches WHERE batch_id = %s", (batch_id,))
        return _bytes(rows[0][0]) if rows else None

    def count_events(self) -> int:
        """How many events the store holds."""
        return int(str(self._select("SELECT count(*) FROM event_keys", ())[0][0]))

    def count_batches(self) -> int:
        """How many batches the store has answered (and keeps the reply of)."""
        return int(str(self._select("SELECT count(*) FROM batches", ())[0][0]))
