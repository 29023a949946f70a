"""The trace service's PostgreSQL store: the same Trace API v1 answers as the SQLite one.

Every ingest is one transaction that first takes one advisory lock
(:data:`_LOCK_INGEST`), whichever worker process runs it.  Under it: the batch
id is looked up (a replay is answered from the stored first reply), the
batch's event ids and codes are looked up in ``event_keys``, the events are
classified (:func:`~scanner_agent.traceserver._ingest.classify`, shared with
SQLite) and the new ones written with two ``COPY``\\ s, then the batch and its
reply.  The lock serialises only that database work (decompression, JSON
parsing and validation run in parallel in every worker), and it is what keeps
``seq`` in commit order: a reader paging ``GET /v1/events`` by ``seq`` can
never skip an event that commits after a later ``seq`` was already visible.

Connections come from a small pool, each used by one thread at a time; one
that fails is closed, not reused.  The schema is ``trace-server migrate``'s
(:mod:`._pgschema`); a database at another version is refused at open.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Final, Self
from urllib.parse import urlsplit, urlunsplit

import psycopg

from scanner_agent.traceserver._ingest import (
    BatchStore,
    Holders,
    Stored,
    classify,
    replayed,
    reply_for,
)
from scanner_agent.traceserver._pgschema import SCHEMA_VERSION, schema_version
from scanner_agent.traceserver._protocol import Batch, EventRow
from scanner_agent.traceserver._store import EVENT_COLUMNS

__all__ = ["PgTraceStore", "redact_url"]

_LOCK_INGEST: Final = 0x5343_414E_0002
"""Advisory lock key every ingest transaction holds ("SCAN" 2)."""

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
        self._slots.acquire()
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = psycopg.connect(self._url, autocommit=True)
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
    worker threads share them).  Raises RuntimeError when the database is not
    at :data:`~._pgschema.SCHEMA_VERSION` (run ``trace-server migrate``).
    """

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        self._url = url
        with psycopg.connect(url, autocommit=True) as conn:
            version = schema_version(conn)
        if version != SCHEMA_VERSION:
            raise RuntimeError(
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
        """One transaction under the ingest lock: a replay's answer, or the batch stored."""
        events = batch.events
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_INGEST,))
            row = conn.execute(
                "SELECT body_hash, reply FROM batches WHERE batch_id = %s", (batch.batch_id,)
            ).fetchone()
            if row is not None:
                return replayed(batch.batch_id, digest, str(row[0]), _bytes(row[1]))
            held = {
                str(r[0])
                for r in conn.execute(
                    "SELECT event_id FROM event_keys WHERE event_id = ANY(%s)",
                    ([event[0] for event in events],),
                )
            }
            codes = list({event[1] for index, event in enumerate(events) if index not in refused})
            holders: Holders = {}
            if codes:
                for code, action, bill, holder in conn.execute(
                    "SELECT code, action, bill, event_id FROM event_keys WHERE code = ANY(%s)",
                    (codes,),
                ):
                    holders[str(code), str(action), str(bill)] = str(holder)
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
        """Write the new events and their keys with ``COPY`` (the fastest bulk path measured)."""
        cursor = conn.cursor()
        with cursor.copy("COPY event_keys (event_id, code, action, bill) FROM STDIN") as copy:
            for event_id, code, _scheme, action, bill, _at, _source in rows:
                copy.write_row((event_id, code, action, bill))
        tail = (batch.device_id, batch.batch_id, received_at)
        with cursor.copy(
            "COPY events (event_id, code, scheme, action, bill, scanned_at, source,"
            " device_id, batch_id, received_at) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row + tail)

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
        """Up to ``limit`` events after sequence number ``after``, oldest first, and the cursor."""
        if after < 0 or limit < 1:
            raise ValueError("after must be >= 0 and limit >= 1")
        rows = self._select(
            _SELECT_EVENTS + " WHERE seq > %s ORDER BY seq LIMIT %s", (after, limit)
        )
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
