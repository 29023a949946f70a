"""The reference trace service: the server side of Trace API v1 (see ``docs/trace-api.md``).

It stands in for the central trace platform in tests, demos and benchmarks:
``POST /v1/batches`` with per-event verdicts and idempotent replays, look-ups
by code, an ordered event feed, and fault hooks that make it answer 503/429.
"""

from __future__ import annotations

from scanner_agent.traceserver._app import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_EVENTS,
    EVENTS_PAGE_DEFAULT,
    EVENTS_PAGE_MAX,
    MAX_GZIP_MEMBERS,
    create_app,
)
from scanner_agent.traceserver._backends import (
    database_errors,
    is_postgres,
    issue_token,
    list_tokens,
    migrate,
    open_store,
    revoke_token,
)
from scanner_agent.traceserver._faults import Fault, Faults
from scanner_agent.traceserver._ingest import BatchStore, DatabaseError, SchemaMismatch
from scanner_agent.traceserver._protocol import (
    ACTIONS,
    REASON_NOT_REGISTERED,
    SCHEMES,
    RequestRefused,
    fingerprint,
    parse_batch,
)
from scanner_agent.traceserver._server import TraceServerThread, serve
from scanner_agent.traceserver._store import EVENT_COLUMNS, TraceStore
from scanner_agent.traceserver._tokens import IssuedToken
from scanner_agent.traceserver._workers import WorkerSettings, serve_workers

__all__ = [
    "ACTIONS",
    "DEFAULT_BODY_TIMEOUT_S",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_EVENTS",
    "EVENTS_PAGE_DEFAULT",
    "EVENTS_PAGE_MAX",
    "EVENT_COLUMNS",
    "MAX_GZIP_MEMBERS",
    "REASON_NOT_REGISTERED",
    "SCHEMES",
    "BatchStore",
    "DatabaseError",
    "Fault",
    "Faults",
    "IssuedToken",
    "RequestRefused",
    "SchemaMismatch",
    "TraceServerThread",
    "TraceStore",
    "WorkerSettings",
    "create_app",
    "database_errors",
    "fingerprint",
    "is_postgres",
    "issue_token",
    "list_tokens",
    "migrate",
    "open_store",
    "parse_batch",
    "revoke_token",
    "serve",
    "serve_workers",
]
