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

from __future__ import annotations

import typing

from scanner_agent.sinks import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:
    from scanner_agent.sinks.trace_api._client import TraceApiClient
    from scanner_agent.sinks.trace_api._doctor import CHECK_NAMES, SERVICE_CHECK, checks
    from scanner_agent.sinks.trace_api._sink import build, names
    from scanner_agent.sinks.trace_api._wire import (
        RESULT_STATUSES,
        TRACE_API_ADMISSION,
        decode_results,
        encode_batch,
    )

# The client, the sink and their kin bring httpx, the sync loop and the outbox: imported
# when first used, so reading this package's settings (the config does) stays light.
__getattr__ = _lazy_exports(
    __name__,
    {
        "_client": ("TraceApiClient",),
        "_doctor": (
            "CHECK_NAMES",
            "SERVICE_CHECK",
            "checks",
        ),
        "_sink": (
            "build",
            "names",
        ),
        "_wire": (
            "RESULT_STATUSES",
            "TRACE_API_ADMISSION",
            "decode_results",
            "encode_batch",
        ),
    },
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
