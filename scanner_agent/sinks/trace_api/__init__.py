"""Trace API v1 (docs/trace-api.md): the sink of ``sync.protocol = "trace-api"``, the default.

* :mod:`._wire`: a batch as the ``POST /v1/batches`` body and the reply's results
  checked against it, pure;
* :mod:`._client`: :class:`TraceApiClient`, the long-lived HTTP client, which is
  also the sink (a Trace API batch is the outbox's own lease, sent as one ``POST``);
* :mod:`._sink`: :func:`build` and :func:`names`, as every sink package has them;
* :mod:`._doctor`: ``scanner-agent doctor``'s checks of the service and the credential.

The reference service that speaks the other end is lab code
(:mod:`scanner_agent.traceserver`).
"""

from scanner_agent.sinks.trace_api._client import TraceApiClient
from scanner_agent.sinks.trace_api._doctor import CHECK_NAMES, SERVICE_CHECK, checks
from scanner_agent.sinks.trace_api._sink import build, names
from scanner_agent.sinks.trace_api._wire import (
    RESULT_STATUSES,
    TRACE_API_ADMISSION,
    decode_results,
    encode_batch,
)

__all__ = [
    "CHECK_NAMES",
    "RESULT_STATUSES",
    "SERVICE_CHECK",
    "TRACE_API_ADMISSION",
    "TraceApiClient",
    "build",
    "checks",
    "decode_results",
    "encode_batch",
    "names",
]
