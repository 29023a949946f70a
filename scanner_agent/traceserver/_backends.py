"""Which store serves a ``--db``: an SQLite file, or a ``postgresql://`` database.

The PostgreSQL modules import psycopg, the optional ``traceserver-pg`` extra,
so they load only when a PostgreSQL URI is given.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from scanner_agent.traceserver import _tokens
from scanner_agent.traceserver._ingest import BatchStore, DatabaseError, SchemaMismatch
from scanner_agent.traceserver._store import Synchronous, TraceStore
from scanner_agent.traceserver._tokens import IssuedToken

__all__ = [
    "database_errors",
    "is_postgres",
    "issue_token",
    "list_tokens",
    "migrate",
    "open_store",
    "revoke_token",
]


def is_postgres(db: str | Path) -> bool:
    """True for a libpq URI (``postgresql://`` or ``postgres://``): the PostgreSQL backend."""
    return isinstance(db, str) and db.startswith(("postgresql://", "postgres://"))


@contextmanager
def database_errors(db: str | Path) -> Iterator[None]:
    """The driver's errors and a schema mismatch as one :class:`DatabaseError` line.

    What an operator who mistyped the URI, or started the service before
    ``trace-server migrate``, must read is the server's own message, on one line
    and without the URI's password, not a Python traceback.
    """
    if not is_postgres(db):
        try:
            yield
        except SchemaMismatch as exc:
            raise DatabaseError(f"trace-server: {exc}") from exc
        return
    import psycopg

    try:
        yield
    except (psycopg.Error, SchemaMismatch) as exc:
        message = " ".join(str(exc).split())
        password = urlsplit(str(db)).password
        if password:
            message = message.replace(password, "***")
        raise DatabaseError(f"trace-server: database: {message}") from exc


def open_store(db: str | Path, *, synchronous: Synchronous = "NORMAL") -> BatchStore:
    """The store for ``db``; ``synchronous`` is SQLite's durability level (see :class:`TraceStore`)."""
    if is_postgres(db):
        from scanner_agent.traceserver._pgstore import PgTraceStore

        return PgTraceStore(str(db))
    return TraceStore(db, synchronous=synchronous)


def migrate(url: str) -> list[int]:
    """Apply the PostgreSQL migrations ``url`` lacks and create the coming months' partitions
    (``trace-server migrate``); the versions applied now."""
    from scanner_agent.traceserver._pgschema import migrate as apply

    return apply(url)


@contextmanager
def _token_store(db: str | Path) -> Iterator[tuple[_tokens.Connection, _tokens.Dialect]]:
    """A committing connection to the store ``db`` for ``trace-server token``, and its dialect.

    An SQLite file must exist (a mistyped path must not become a new, empty
    store); it is brought to the current schema as the server would.
    """
    if is_postgres(db):
        from scanner_agent.traceserver._pgschema import connect

        with connect(str(db), autocommit=False) as pg:
            yield pg, _tokens.PG
        return
    if not Path(db).is_file():
        raise FileNotFoundError(f"no trace store at {db} (start trace-server on it first)")
    TraceStore(db).close()  # the schema, device_tokens included
    with closing(sqlite3.connect(db)) as lite, lite:
        yield lite, _tokens.SQLITE


def issue_token(db: str | Path, device_id: str) -> IssuedToken:
    """``trace-server token add``: a new token for ``device_id``, its secret shown this once."""
    with _token_store(db) as (conn, sql):
        return _tokens.issue(conn, sql, device_id)


def revoke_token(db: str | Path, token_id: str) -> bool:
    """``trace-server token revoke``: end ``token_id`` at the next request; False if none was live."""
    with _token_store(db) as (conn, sql):
        return _tokens.revoke(conn, sql, token_id)


def list_tokens(db: str | Path) -> list[tuple[str, str, str, str | None]]:
    """``trace-server token list``: every token's ``(id, device, created_at, revoked_at)``."""
    with _token_store(db) as (conn, sql):
        return _tokens.listing(conn, sql)
