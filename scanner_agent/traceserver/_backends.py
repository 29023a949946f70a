"""Which store serves a ``--db``: an SQLite file, or a ``postgresql://`` database.

The PostgreSQL modules import psycopg, the optional ``traceserver-pg`` extra,
so they load only when a PostgreSQL URI is given.
"""

from __future__ import annotations

from pathlib import Path

from scanner_agent.traceserver._ingest import BatchStore
from scanner_agent.traceserver._store import Synchronous, TraceStore

__all__ = ["is_postgres", "migrate", "open_store"]


def is_postgres(db: str | Path) -> bool:
    """True for a libpq URI (``postgresql://`` or ``postgres://``): the PostgreSQL backend."""
    return isinstance(db, str) and db.startswith(("postgresql://", "postgres://"))


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
