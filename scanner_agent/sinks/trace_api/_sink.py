"""Trace API v1 as the sync loop's sink: :class:`TraceApiClient` itself, built from ``[sync]``.

A Trace API batch is the outbox's own lease and goes out as one ``POST``, so
the client is the sink; this module builds it the way every sink package
builds its own (:mod:`scanner_agent.sinks`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scanner_agent.sinks.trace_api._client import TraceApiClient
from scanner_agent.sync import SinkContext, SinkNames

if TYPE_CHECKING:
    from scanner_agent.sinks.trace_api._settings import TraceApiAgentSettings

__all__ = ["build", "names"]


def build(settings: TraceApiAgentSettings, context: SinkContext) -> TraceApiClient:
    """The client for ``[sync]``'s trace service, telling ``context.observers`` of each POST."""
    return TraceApiClient(
        settings.sync,
        token=context.token,
        device_id=settings.device_id,
        transport=context.transport,
        observers=context.observers,
    )


def names(settings: TraceApiAgentSettings) -> SinkNames:
    """``the trace service (<sync.url>)``, its token and where the token comes from."""
    sc = settings.sync
    source = f"sync.token_file ({sc.token_file})" if sc.token_file else f"${sc.token_env or '?'}"
    return SinkNames(f"the trace service ({sc.url})", "token", source)
