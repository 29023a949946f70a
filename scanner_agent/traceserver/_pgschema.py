"""The trace service's PostgreSQL schema: versioned migrations and the events' time partitions.

``trace-server migrate`` applies what a database lacks, each migration in its
own transaction under an advisory lock (two operators running it at once do
it once), and records it in ``schema_migrations``.  The server never changes
the schema: it refuses a database that is not at :data:`SCHEMA_VERSION`.

Events are partitioned by month of ``received_at``: old months are detached
or dropped whole (no bulk DELETE), and a month's indexes stay small.  A
partitioned table cannot hold a unique index that leaves out its partition
key, so the Trace API's two identities, ``event_id`` and ``(code, action,
bill)``, are kept unique in ``event_keys``, one small row per event, which
is also what a batch's duplicates are looked up in.  ``(code, seq)`` serves
``GET /v1/codes/{code}``.  The feed (``GET /v1/events``) runs in ``(xid, seq)``
order: ``xid`` is the writing transaction's id (``pg_current_xact_id()``, the
column's default; 0 for the rows written before migration 3, which keep their
``seq`` order), and only rows whose transaction is older than every one still
running are shown (:mod:`._pgstore` says why); ``(seq)`` finds a cursor's row.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Final

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from scanner_agent.traceserver._ingest import SchemaMismatch

__all__ = [
    "CONNECT_TIMEOUT_S",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "connect",
    "ensure_partitions",
    "migrate",
    "schema_version",
]

_LOCK_MIGRATE: Final = 0x5343_414E_0001
"""Advisory lock key held while migrating ("SCAN" 1)."""

MIGRATIONS: Final[tuple[tuple[int, str, str], ...]] = (
    (
        1,
        "batches, events partitioned by month, event_keys",
        """
CREATE TABLE batches (
    batch_id     text PRIMARY KEY,
    body_hash    text NOT NULL,
    device_id    text NOT NULL,
    sent_at      text NOT NULL,
    received_at  timestamptz NOT NULL,
    event_count  integer NOT NULL,
    reply        bytea NOT NULL
);
CREATE SEQUENCE events_seq AS bigint;
CREATE TABLE events (
    seq          bigint NOT NULL DEFAULT nextval('events_seq'),
    event_id     text NOT NULL,
    code         text NOT NULL,
    scheme       text NOT NULL,
    action       text NOT NULL,
    bill         text NOT NULL,
    scanned_at   text NOT NULL,
    source       text NOT NULL,
    device_id    text NOT NULL,
    batch_id     text NOT NULL,
    received_at  timestamptz NOT NULL
) PARTITION BY RANGE (received_at);
ALTER SEQUENCE events_seq OWNED BY events.seq;
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX events_seq_idx ON events (seq);
CREATE INDEX events_code_seq_idx ON events (code, seq);
CREATE TABLE event_keys (
    event_id     text PRIMARY KEY,
    code         text NOT NULL,
    action       text NOT NULL,
    bill         text NOT NULL,
    UNIQUE (code, action, bill)
);
""",
    ),
    (
        2,
        "device_tokens: one credential per dock, kept as a SHA-256",
        """
CREATE TABLE device_tokens (
    token_id       text PRIMARY KEY,
    device_id      text NOT NULL,
    secret_sha256  bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);
CREATE INDEX device_tokens_device_idx ON device_tokens (device_id);
""",
    ),
    (
        3,
        "events.xid: the feed in commit-safe (xid, seq) order, ingests without a global lock",
        """
ALTER TABLE events ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX events_xid_seq_idx ON events (xid, seq);
""",
    ),
)
"""``(version, description, SQL)``, applied in order; never edit one that has shipped."""

SCHEMA_VERSION: Final = MIGRATIONS[-1][0]
"""The version this code reads and writes."""


def schema_version(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """The highest migration applied to the database (0 for an empty one)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(str(row[0])) if row else 0


CONNECT_TIMEOUT_S: Final = 10
"""How long a connection attempt waits for the database unless the URI sets libpq's
``connect_timeout`` itself.  Without one libpq waits for ever on a host that takes the TCP
connection and never answers, holding a pool slot and every request queued behind it."""


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[TupleRow]:
    """A connection to ``url``, given up after :data:`CONNECT_TIMEOUT_S` (or the URI's own
    ``connect_timeout``): every connection the service, ``migrate`` and ``token`` open."""
    if "connect_timeout" in conninfo_to_dict(url):
        return psycopg.connect(url, autocommit=autocommit)
    return psycopg.connect(url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S)


def migrate(url: str, *, months_ahead: int = 3) -> list[int]:
    """Apply the migrations ``url`` lacks and create the coming months' partitions.

    Returns the versions applied now (empty when it was current).  Refuses a
    database migrated by a newer version of this service.
    """
    applied: list[int] = []
    with connect(url) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_MIGRATE,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            current = schema_version(conn)
            if current > SCHEMA_VERSION:
                raise SchemaMismatch(
                    f"database schema version {current} is newer than this service's "
                    f"{SCHEMA_VERSION}: upgrade scanner-agent"
                )
            for version, description, sql in MIGRATIONS:
                if version <= current:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, description) VALUES (%s, %s)",
                        (version, description),
                    )
                applied.append(version)
            ensure_partitions(conn, months_ahead=months_ahead)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_MIGRATE,))
    return applied


def _month(start: date, offset: int) -> date:
    months = start.year * 12 + start.month - 1 + offset
    return date(months // 12, months % 12 + 1, 1)


def ensure_partitions(
    conn: psycopg.Connection[tuple[object, ...]],
    *,
    months_ahead: int = 3,
    today: date | None = None,
) -> list[str]:
    """Create the monthly partitions of ``events`` from this month to ``months_ahead`` on.

    A month that already has rows in the default partition is left there (its
    partition could not be attached over them); returns the partitions made.
    """
    first = _month(today or datetime.now(UTC).date(), 0)
    made: list[str] = []
    for offset in range(months_ahead + 1):
        start, end = _month(first, offset), _month(first, offset + 1)
        name = f"events_{start:%Y_%m}"
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
        if exists and exists[0]:
            continue
        spill = conn.execute(
            "SELECT 1 FROM events_default WHERE received_at >= %s AND received_at < %s LIMIT 1",
            (start, end),
        ).fetchone()
        if spill:
            continue
        # The name is built from digits only; bounds are literals PostgreSQL requires here.
        conn.execute(
            f"CREATE TABLE {name} PARTITION OF events"
            f" FOR VALUES FROM ('{start:%Y-%m-%d} 00:00+00') TO ('{end:%Y-%m-%d} 00:00+00')".encode()
        )
        made.append(name)
    return made
