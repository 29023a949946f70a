"""Trace API v1 (docs/trace-api.md): the sink of ``sync.protocol = "trace-api"``, the default.

* :mod:`._settings`: what it reads of ``[sync]``, and the one check of its keys;
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

from scanner_agent.sinks._lazy import lazy_exports as _lazy_exports
from scanner_agent.sinks.trace_api._settings import (
    MAX_BATCH_EVENTS,
    TraceApiAgentSettings,
    TraceApiSettings,
    check_settings,
)

_lazy = _lazy_exports(
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


def __getattr__(name: str) -> typing.Any:
    """The client, the sink and their kin bring httpx, the sync loop and the outbox: they are
    imported when first asked for, so reading this package's settings (the config does) stays
    light (:func:`scanner_agent.sinks.lazy_exports`)."""
    return _lazy(name)


__all__ = [
    "CHECK_NAMES",
    "MAX_BATCH_EVENTS",
    "RESULT_STATUSES",
    "SERVICE_CHECK",
    "TRACE_API_ADMISSION",
    "TraceApiAgentSettings",
    "TraceApiClient",
    "TraceApiSettings",
    "build",
    "check_settings",
    "checks",
    "decode_results",
    "encode_batch",
    "names",
]
