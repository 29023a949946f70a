"""Delivery of the outbox to a sink: the sync loop, the :class:`Sink` protocol with its
admission rules, and the one HTTP layer every sink speaks through.

The sinks themselves are in :mod:`scanner_agent.sinks`, one package per
``sync.protocol``.
"""

from scanner_agent.sync._http import (
    RETRYABLE_STATUSES,
    USER_AGENT,
    BearerAuth,
    NetworkError,
    ServiceError,
    TlsSettings,
    build_ssl_context,
    date_offset_s,
    parse_retry_after,
    redact,
    status_error,
    transport_error,
)
from scanner_agent.sync._loop import SyncLoop
from scanner_agent.sync._settings import LoopSettings
from scanner_agent.sync._sinks import (
    Admission,
    BillTerms,
    Gate,
    MovableSink,
    PlatformAlarms,
    Sink,
    SinkContext,
    SinkNames,
    SyncObserver,
)
from scanner_agent.sync._stats import RECENT_REJECTIONS, LinkState, Rejection, SyncStats

__all__ = [
    "RECENT_REJECTIONS",
    "RETRYABLE_STATUSES",
    "USER_AGENT",
    "Admission",
    "BearerAuth",
    "BillTerms",
    "Gate",
    "LinkState",
    "LoopSettings",
    "MovableSink",
    "NetworkError",
    "PlatformAlarms",
    "Rejection",
    "ServiceError",
    "Sink",
    "SinkContext",
    "SinkNames",
    "SyncLoop",
    "SyncObserver",
    "SyncStats",
    "TlsSettings",
    "build_ssl_context",
    "date_offset_s",
    "parse_retry_after",
    "redact",
    "status_error",
    "transport_error",
]
