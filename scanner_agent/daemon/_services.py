"""The daemon's optional metrics endpoint (``/metrics``, ``/health``, ``/ready``).

It may fail to start (a busy address): that is logged, and scanning goes on
without it.  Its modules (and prometheus-client) load only when it is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from scanner_agent.config import AgentConfig
from scanner_agent.control import AgentStatus
from scanner_agent.kernel import ScannerAgentError
from scanner_agent.sync import SyncObserver

if TYPE_CHECKING:
    from scanner_agent.ops.metrics import MetricsServer

log = logging.getLogger(__package__)  # the daemon's one logger name, as in its log lines


def start_metrics(
    cfg: AgentConfig,
    status: Callable[[float], Coroutine[Any, Any, AgentStatus]],
    observers: list[SyncObserver],
) -> MetricsServer | None:
    """Serve ``[metrics] listen`` if set, its sync latency fed by ``observers``; a failure is
    logged, never fatal (None)."""
    listen = cfg.metrics.listen
    if not listen:
        return None
    # Imported only when configured: prometheus-client stays unloaded otherwise.
    from scanner_agent.ops.health import HealthProbe
    from scanner_agent.ops.metrics import AgentMetrics, MetricsServer, loop_snapshot

    metrics = AgentMetrics(loop_snapshot(status, asyncio.get_running_loop()))
    probe = HealthProbe(metrics.snapshot, cfg.outbox.path, cfg.outbox.min_free_mb)
    server = MetricsServer(metrics, listen, probe)
    try:
        server.start()
    except (OSError, ScannerAgentError) as exc:
        log.error("metrics: failed to listen on %s: %s", listen, exc)
        return None
    observers.append(metrics.observe_sync)
    return server


def stop_metrics(server: MetricsServer | None, observers: list[SyncObserver]) -> None:
    """Stop ``server`` (if any) and its sync observer."""
    if server is not None:
        with contextlib.suppress(ValueError):
            observers.remove(server.metrics.observe_sync)
        server.stop()
