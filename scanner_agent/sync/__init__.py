"""Delivery of the outbox to the trace service (Trace API v1)."""

from scanner_agent.sync._client import (
    TraceApiClient,
    build_ssl_context,
    decode_results,
    encode_batch,
    parse_retry_after,
)
from scanner_agent.sync._loop import LinkState, SyncLoop, SyncStats, backoff_delay

__all__ = [
    "LinkState",
    "SyncLoop",
    "SyncStats",
    "TraceApiClient",
    "backoff_delay",
    "build_ssl_context",
    "decode_results",
    "encode_batch",
    "parse_retry_after",
]
