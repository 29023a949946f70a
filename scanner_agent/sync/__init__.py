"""Delivery of the outbox to the trace service (Trace API v1) or a platform, through a sink."""

from scanner_agent.sync._client import (
    NetworkError,
    ServiceError,
    TraceApiClient,
    build_ssl_context,
    date_offset_s,
    decode_results,
    encode_batch,
    parse_retry_after,
)
from scanner_agent.sync._loop import (
    RECENT_REJECTIONS,
    LinkState,
    Rejection,
    SyncLoop,
    SyncStats,
    backoff_delay,
)
from scanner_agent.sync._sinks import Admission, BillTerms, Gate, PlatformAlarms, Sink

__all__ = [
    "RECENT_REJECTIONS",
    "Admission",
    "BillTerms",
    "Gate",
    "LinkState",
    "NetworkError",
    "PlatformAlarms",
    "Rejection",
    "ServiceError",
    "Sink",
    "SyncLoop",
    "SyncStats",
    "TraceApiClient",
    "backoff_delay",
    "build_ssl_context",
    "date_offset_s",
    "decode_results",
    "encode_batch",
    "parse_retry_after",
]
