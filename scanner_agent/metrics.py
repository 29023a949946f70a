"""An optional Prometheus text endpoint on loopback (``[metrics] listen``).

Nothing here is global: :class:`AgentMetrics` owns a private
``CollectorRegistry`` holding one custom collector that reads the daemon's
live state *at scrape time* (a ``Daemon.status()`` snapshot taken on the
daemon's event loop) and the one stateful metric, the sync request latency
histogram, fed by the daemon's ``sync_observers`` hook.  The HTTP server is
prometheus-client's own (a thread), so a scrape never runs on the event loop;
it hands the loop a coroutine and waits at most :data:`SNAPSHOT_TIMEOUT_S`, and
a stalled loop shows up as ``scanner_agent_up 0`` instead of a hung scrape.

Metrics (all prefixed ``scanner_agent_``):

==========================================  =======  ==========================================
name                                        type     meaning
==========================================  =======  ==========================================
``up``                                      gauge    1 when the snapshot was read, else 0
``info{version,device_id}``                 gauge    always 1
``uptime_seconds``                          gauge    since the daemon became ready
``scans_total{result}``                     counter  ``accepted`` / ``refused`` since start
``scans_refused_total{reason}``             counter  refusals by reason kind
``outbox_rows{state}``                      gauge    rows per row state (``outbox.RowState``)
``outbox_backlog``                          gauge    rows not yet delivered (pending+held+in_flight)
``outbox_oldest_pending_age_seconds``       gauge    age of the oldest undelivered scan (0: none)
``sync_link_state{state}``                  gauge    1 for the current link state, 0 otherwise
``sync_batches_total``                      counter  batches answered by the service
``sync_delivered_total``                    counter  scans the service holds
``sync_rejected_total``                     counter  scans moved to dead letters
``sync_failures_total``                     counter  failed sends (each retried)
``sync_in_flight``                          gauge    batches awaiting a reply
``sync_request_duration_seconds{outcome}``  histo    ``POST /v1/batches`` latency
``device_connected{source,device}``         gauge    1 while a hardware source's device is open
``alarms``                                  gauge    alarms needing a person (status ``alarms``)
==========================================  =======  ==========================================
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Histogram, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scanner_agent import __version__
from scanner_agent.errors import ConfigError
from scanner_agent.sync import LinkState

log = logging.getLogger(__name__)

PREFIX = "scanner_agent_"
SNAPSHOT_TIMEOUT_S = 5.0
"""Longest a scrape waits for the event loop to produce a snapshot."""
SYNC_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds: a loopback batch takes milliseconds, a 3G uplink seconds, a timeout 30 s."""

Snapshot = Callable[[], Mapping[str, Any]]
"""Returns a ``Daemon.status()``-shaped mapping; may raise (the scrape then reports up 0)."""


class StatusSource(Protocol):
    """What the metrics read: anything with the daemon's ``status()`` coroutine."""

    def status(self) -> Awaitable[dict[str, Any]]:
        """A JSON-ready snapshot (see ``Daemon.status``)."""
        ...


def loop_snapshot(
    source: StatusSource,
    loop: asyncio.AbstractEventLoop,
    *,
    timeout: float = SNAPSHOT_TIMEOUT_S,
) -> Snapshot:
    """A :data:`Snapshot` that runs ``source.status()`` on ``loop`` from another thread."""

    async def call() -> dict[str, Any]:
        return await source.status()

    def snapshot() -> Mapping[str, Any]:
        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout)

    return snapshot


def _age_seconds(stamp: str | None, now: datetime) -> float:
    if not stamp:
        return 0.0
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return 0.0
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return max(0.0, (now - then).total_seconds())


class _StateCollector(Collector):
    """Reads the live snapshot on every scrape and turns it into metric families."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(PREFIX + "up", "1 when the daemon's state could be read")
        try:
            status = dict(self._snapshot())
        except Exception as exc:  # a stalled loop (timeout), a stopped daemon, an outbox error
            log.warning("metrics: failed to read the daemon's state: %r", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _families(status, datetime.now(UTC))


def _families(status: Mapping[str, Any], now: datetime) -> Iterator[Metric]:
    info = GaugeMetricFamily(
        PREFIX + "info", "Agent version and device id", labels=["version", "device_id"]
    )
    info.add_metric([__version__, str(status.get("device_id", ""))], 1)
    yield info
    yield GaugeMetricFamily(
        PREFIX + "uptime_seconds", "Seconds since the daemon became ready", value=status["uptime_s"]
    )

    scans = CounterMetricFamily(PREFIX + "scans", "Scans since start by result", labels=["result"])
    refused: Mapping[str, int] = status.get("refused") or {}
    scans.add_metric(["accepted"], status.get("accepted", 0))
    scans.add_metric(["refused"], sum(refused.values()))
    yield scans
    by_reason = CounterMetricFamily(
        PREFIX + "scans_refused", "Refused scans since start by reason", labels=["reason"]
    )
    for reason, n in sorted(refused.items()):
        by_reason.add_metric([reason], n)
    yield by_reason

    rows = GaugeMetricFamily(PREFIX + "outbox_rows", "Outbox rows per state", labels=["state"])
    for state, n in sorted((status.get("queue") or {}).items()):
        rows.add_metric([state], n)
    yield rows
    yield GaugeMetricFamily(
        PREFIX + "outbox_backlog", "Outbox rows not yet delivered", value=status["backlog"]
    )
    yield GaugeMetricFamily(
        PREFIX + "outbox_oldest_pending_age_seconds",
        "Age of the oldest undelivered scan (0 when there is none)",
        value=_age_seconds(status.get("oldest_pending_at"), now),
    )

    link = GaugeMetricFamily(
        PREFIX + "sync_link_state", "1 for the current link state", labels=["state"]
    )
    current = str(status.get("link", LinkState.UNKNOWN.value))
    for state in LinkState:
        link.add_metric([state.value], 1 if state.value == current else 0)
    yield link
    sync: Mapping[str, Any] = status.get("sync") or {}
    for key, help_text in (
        ("batches", "Batches the service answered"),
        ("delivered", "Scans the service holds"),
        ("rejected", "Scans moved to dead letters"),
        ("failures", "Failed sends (each is retried)"),
    ):
        yield CounterMetricFamily(PREFIX + f"sync_{key}", help_text, value=sync.get(key, 0))
    yield GaugeMetricFamily(
        PREFIX + "sync_in_flight", "Batches awaiting a reply", value=sync.get("in_flight", 0)
    )

    devices = GaugeMetricFamily(
        PREFIX + "device_connected",
        "1 while a hardware source's device is open",
        labels=["source", "device"],
    )
    for d in status.get("devices") or []:
        devices.add_metric(
            [str(d.get("source", "")), str(d.get("device", ""))], 1 if d.get("connected") else 0
        )
    yield devices
    yield GaugeMetricFamily(
        PREFIX + "alarms", "Alarms that need a person", value=len(status.get("alarms") or [])
    )


class AgentMetrics:
    """The registry one daemon exposes: live state plus the sync latency histogram."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.sync_latency = Histogram(
            PREFIX + "sync_request_duration_seconds",
            "Duration of POST /v1/batches requests, by outcome (ok or the error type)",
            labelnames=["outcome"],
            buckets=SYNC_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(snapshot))

    def observe_sync(self, seconds: float, outcome: str) -> None:
        """The daemon's sync observer hook: one finished batch request."""
        self.sync_latency.labels(outcome=outcome).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of everything, now."""
        return generate_latest(self.registry)


def parse_listen(listen: str) -> tuple[str, int]:
    """``127.0.0.1:9464`` -> ``("127.0.0.1", 9464)``; ``[::1]:9464`` for IPv6.

    Raises:
        ConfigError: not ``host:port``.
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"metrics.listen: expected host:port, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class MetricsServer:
    """``GET /metrics`` on ``listen`` (prometheus-client's threaded WSGI server)."""

    def __init__(self, metrics: AgentMetrics, listen: str) -> None:
        self.metrics = metrics
        self.listen = listen
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound ``(host, port)`` while serving (port 0 in the config picks a free one)."""
        if self._server is None:
            return None
        return str(self._server.server_address[0]), int(self._server.server_port)

    def start(self) -> None:
        """Bind and serve in a background thread.

        Raises:
            OSError: the address is in use or not local.
        """
        host, port = parse_listen(self.listen)
        self._server, self._thread = start_http_server(
            port, addr=host, registry=self.metrics.registry
        )
        log.info("metrics on http://%s:%d/metrics", *self.address_or_raise())

    def address_or_raise(self) -> tuple[str, int]:
        """:attr:`address`, for callers that know the server runs."""
        address = self.address
        if address is None:
            raise RuntimeError("Failed to read the metrics address: the server is not running")
        return address

    def stop(self) -> None:
        """Stop serving and close the socket.  Idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
