"""An optional Prometheus text endpoint on loopback (``[metrics] listen``).

Nothing here is global: :class:`AgentMetrics` owns a private
``CollectorRegistry`` holding one custom collector that reads the daemon's
live state *at scrape time* (the daemon's typed
:class:`~scanner_agent.control.AgentStatus`, taken on its event loop) and the one stateful metric, the sync request latency
histogram, fed by the daemon's ``sync_observers`` hook.  The HTTP server runs
in threads, so a scrape never runs on the event loop; it hands the loop a
coroutine and waits at most :data:`SNAPSHOT_TIMEOUT_S`, and a stalled loop
shows up as ``scanner_agent_up 0`` instead of a hung scrape.

The same server answers ``GET /health`` and ``GET /ready`` (JSON, from the
same bounded snapshot; :mod:`scanner_agent.ops.health`).

Scrapes are bounded: the snapshot accepts outbox counts up to
:data:`SCRAPE_MAX_AGE_S` old, so concurrent scrapes share one count (and
``status`` over the control socket is not starved by them); a scrape that
times out cancels its snapshot instead of leaving it queued; at most
:data:`MAX_SCRAPES` requests are served at once (more get ``503`` at once) and
each connection must send its request within :data:`REQUEST_TIMEOUT_S`.

Metrics (all prefixed ``scanner_agent_``):

=============================================  =======  ==========================================
name                                           type     meaning
=============================================  =======  ==========================================
``up``                                         gauge    1 when the snapshot was read, else 0
``info{version,device_id}``                    gauge    always 1
``uptime_seconds``                             gauge    since the daemon became ready
``scans_total{result}``                        counter  ``accepted`` / ``refused`` since start
``scans_refused_total{reason}``                counter  refusals by reason label (outbox.reason_label)
``outbox_rows{state}``                         gauge    rows per row state (``outbox.RowState``)
``outbox_backlog``                             gauge    rows not yet delivered (pending+held+in_flight)
``outbox_oldest_pending_age_seconds``          gauge    age of the oldest undelivered scan (0: none)
``sync_link_state{state}``                     gauge    1 for the current link state, 0 otherwise
``sync_batches_total``                         counter  batches answered by the service
``sync_delivered_total``                       counter  scans the service holds
``sync_rejected_total``                        counter  scans moved to dead letters
``sync_failures_total``                        counter  failed sends (each retried)
``sync_in_flight``                             gauge    batches awaiting a reply
``sync_request_duration_seconds{outcome}``     histo    ``POST /v1/batches`` latency
``device_connected{source,device}``            gauge    1 while a hardware source's device is open
``alarms``                                     gauge    alarms needing a person (status ``alarms``)
``refusals_unrecorded_total``                  counter  refusals not written: disk near the reserve
``tcp_connection_events_total{source,event}``  counter  accepted, refused, evicted, timed out... (TCP_EVENTS)
``tcp_clients{source}``                        gauge    TCP connections open now
``tcp_in_flight_frames{source}``               gauge    frames read and not answered yet
``tcp_in_flight_bytes{source}``                gauge    bytes of those frames
=============================================  =======  ==========================================
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Histogram, generate_latest, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scanner_agent import __version__
from scanner_agent.config import resolve_loopback_listen
from scanner_agent.control import AgentStatus, SyncStatus, TcpReport
from scanner_agent.ops.health import HealthProbe, Verdict
from scanner_agent.sync import LinkState

log = logging.getLogger(__name__)

PREFIX = "scanner_agent_"
SNAPSHOT_TIMEOUT_S = 5.0
"""Longest a scrape waits for the event loop to produce a snapshot."""
SCRAPE_MAX_AGE_S = 5.0
"""Outbox counts a scrape accepts from an earlier count (concurrent scrapes share one)."""
MAX_SCRAPES = 8
"""Requests served at once; a connection beyond them is answered ``503`` and closed."""
REQUEST_TIMEOUT_S = 10.0
"""Longest a connection may take, from accept to the end of its reply (a deadline for the
whole exchange, not for each read: a client trickling its request is cut off at it)."""
SYNC_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds: a loopback batch takes milliseconds, a 3G uplink seconds, a timeout 30 s."""

Snapshot = Callable[[], AgentStatus]
"""Returns the daemon's status; may raise (the scrape then reports up 0)."""
StatusReader = Callable[[float], Coroutine[Any, Any, AgentStatus]]
"""The daemon's ``agent_status`` coroutine: the status with counts up to that many seconds old."""


def loop_snapshot(
    status: StatusReader,
    loop: asyncio.AbstractEventLoop,
    *,
    timeout: float = SNAPSHOT_TIMEOUT_S,
) -> Snapshot:
    """A :data:`Snapshot` that runs ``status`` on ``loop`` from another thread.

    A snapshot not ready within ``timeout`` is cancelled on the loop (and the
    scrape reports ``up 0``): nothing is left running for a scrape that gave up.
    """

    def snapshot() -> AgentStatus:
        future = asyncio.run_coroutine_threadsafe(status(SCRAPE_MAX_AGE_S), loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

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
            status = self._snapshot()
        except Exception as exc:  # a stalled loop (timeout), a stopped daemon, an outbox error
            log.warning("metrics: failed to read the daemon's state: %r", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _families(status, datetime.now(UTC))


def _families(status: AgentStatus, now: datetime) -> Iterator[Metric]:
    info = GaugeMetricFamily(
        PREFIX + "info", "Agent version and device id", labels=["version", "device_id"]
    )
    info.add_metric([__version__, status.device_id], 1)
    yield info
    yield GaugeMetricFamily(
        PREFIX + "uptime_seconds", "Seconds since the daemon became ready", value=status.uptime_s
    )
    yield from _scan_families(status)
    rows = GaugeMetricFamily(PREFIX + "outbox_rows", "Outbox rows per state", labels=["state"])
    for state, n in sorted(status.queue.items()):
        rows.add_metric([state], n)
    yield rows
    yield GaugeMetricFamily(
        PREFIX + "outbox_backlog", "Outbox rows not yet delivered", value=status.backlog
    )
    yield GaugeMetricFamily(
        PREFIX + "outbox_oldest_pending_age_seconds",
        "Age of the oldest undelivered scan (0 when there is none)",
        value=_age_seconds(status.oldest_pending_at, now),
    )
    yield from _sync_families(status)
    devices = GaugeMetricFamily(
        PREFIX + "device_connected",
        "1 while a hardware source's device is open",
        labels=["source", "device"],
    )
    for d in status.devices:
        devices.add_metric([d.source, d.device], 1 if d.connected else 0)
    yield devices
    yield GaugeMetricFamily(
        PREFIX + "alarms", "Alarms that need a person", value=len(status.alarms)
    )
    yield CounterMetricFamily(
        PREFIX + "refusals_unrecorded",
        "Refused scans counted but not written (free space below twice outbox.min_free_mb)",
        value=status.refusals_dropped,
    )
    yield from _tcp_families(status.tcp)


def _scan_families(status: AgentStatus) -> Iterator[Metric]:
    scans = CounterMetricFamily(PREFIX + "scans", "Scans since start by result", labels=["result"])
    scans.add_metric(["accepted"], status.accepted)
    scans.add_metric(["refused"], sum(status.refused.values()))
    yield scans
    by_reason = CounterMetricFamily(
        PREFIX + "scans_refused", "Refused scans since start by reason", labels=["reason"]
    )
    for reason, n in sorted(status.refused.items()):
        by_reason.add_metric([reason], n)
    yield by_reason


def _sync_families(status: AgentStatus) -> Iterator[Metric]:
    link = GaugeMetricFamily(
        PREFIX + "sync_link_state", "1 for the current link state", labels=["state"]
    )
    for state in LinkState:
        link.add_metric([state.value], 1 if state.value == status.link else 0)
    yield link
    sync = status.sync or SyncStatus()
    for name, value, help_text in (
        ("batches", sync.batches, "Batches the service answered"),
        ("delivered", sync.delivered, "Scans the service holds"),
        ("rejected", sync.rejected, "Scans moved to dead letters"),
        ("failures", sync.failures, "Failed sends (each is retried)"),
    ):
        yield CounterMetricFamily(PREFIX + f"sync_{name}", help_text, value=value)
    yield GaugeMetricFamily(
        PREFIX + "sync_in_flight", "Batches awaiting a reply", value=sync.in_flight
    )


TCP_EVENTS = {
    "accepted": "connections",
    "refused": "refused",
    "evicted": "evicted",
    "idle_closed": "idle_closed",
    "read_timeout": "read_timeouts",
    "write_timeout": "write_timeouts",
    "slowed": "slowed",
}
"""``tcp_connection_events_total{event}``: each event and its ``TcpStats`` counter."""


def _tcp_families(sources: tuple[TcpReport, ...]) -> Iterator[Metric]:
    events = CounterMetricFamily(
        PREFIX + "tcp_connection_events",
        "TCP source connections accepted, refused, evicted, closed idle or timed out, and "
        "peers slowed down for refused frames, since start",
        labels=["source", "event"],
    )
    clients = GaugeMetricFamily(
        PREFIX + "tcp_clients", "TCP source connections open now", labels=["source"]
    )
    frames = GaugeMetricFamily(
        PREFIX + "tcp_in_flight_frames",
        "Frames a TCP source read and has not answered yet",
        labels=["source"],
    )
    size = GaugeMetricFamily(
        PREFIX + "tcp_in_flight_bytes",
        "Bytes of those frames",
        labels=["source"],
    )
    for src in sources:
        name, counters = src.source, src.counters
        for event, key in TCP_EVENTS.items():
            events.add_metric([name, event], counters.get(key, 0))
        clients.add_metric([name], src.clients)
        frames.add_metric([name], counters.get("frames_in_flight", 0))
        size.add_metric([name], counters.get("bytes_in_flight", 0))
    yield from (events, clients, frames, size)


class AgentMetrics:
    """The registry one daemon exposes: live state plus the sync latency histogram."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        """The daemon's state, as scrapes and health probes read it."""
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


_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: 25\r\n\r\ntoo many scrapes at once\n"
)


class _QuietHandler(WSGIRequestHandler):
    """No access log; a socket timeout bounds each read and write (the server's deadline,
    the whole request)."""

    server: _BoundedServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout_s)

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: a scrape every few seconds is not news."""


class _BoundedServer(ThreadingMixIn, WSGIServer):
    """A thread per request, but at most :data:`MAX_SCRAPES` of them; the rest get 503."""

    daemon_threads = True
    block_on_close = False
    request_timeout_s = REQUEST_TIMEOUT_S
    """Longest a connection may take, from accept to the end of its reply."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(MAX_SCRAPES)
        self._count_lock = threading.Lock()
        self.active = 0
        """Requests being served now."""
        self.refused = 0
        """Connections answered 503 because :data:`MAX_SCRAPES` were being served."""
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            try:
                request.settimeout(REQUEST_TIMEOUT_S)
                request.sendall(_BUSY)
            except OSError:
                pass
            finally:
                self.shutdown_request(request)
            return
        with self._count_lock:
            self.active += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # A deadline for the whole exchange: the socket timeout bounds each read, so a
        # client sending its head a byte at a time would otherwise keep its slot for ever
        # (eight of them, and every scrape is refused).  At the deadline the connection is
        # shut down; the handler's next read or write ends it.
        deadline = threading.Timer(self.request_timeout_s, _cut_off, args=(request,))
        deadline.daemon = True
        deadline.start()
        try:
            super().process_request_thread(request, client_address)
        finally:
            deadline.cancel()
            self._release()

    def _release(self) -> None:
        with self._count_lock:
            self.active -= 1
        self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or hung up: not worth a traceback on stderr.
        log.debug("metrics: request from %s failed", client_address, exc_info=True)


def _cut_off(request: socket.socket) -> None:
    with contextlib.suppress(OSError):
        request.shutdown(socket.SHUT_RDWR)


_REASONS = {200: "OK", 503: "Service Unavailable"}


def _with_probes(app: Any, probe: HealthProbe) -> Any:
    """``app`` (the metrics) with ``/health`` and ``/ready`` answered by ``probe``, as JSON."""
    routes: dict[str, Callable[[], Verdict]] = {
        "/health": probe.liveness,
        "/ready": probe.readiness,
    }

    def dispatch(environ: dict[str, Any], start_response: Any) -> Any:
        route = routes.get(environ.get("PATH_INFO", ""))
        if route is None:
            return app(environ, start_response)
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        code, body = route()
        data = json.dumps(body, ensure_ascii=False).encode() + b"\n"
        start_response(
            f"{code} {_REASONS.get(code, '')}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [data]

    return dispatch


class MetricsServer:
    """``GET /metrics`` on ``listen`` (prometheus-client's threaded WSGI server), and
    ``/health`` and ``/ready`` when given a :class:`~scanner_agent.ops.health.HealthProbe`."""

    def __init__(
        self,
        metrics: AgentMetrics,
        listen: str,
        probe: HealthProbe | None = None,
        *,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.metrics = metrics
        self.listen = listen
        self.probe = probe
        self.request_timeout_s = request_timeout_s
        self._server: _BoundedServer | None = None
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
            ConfigError: ``listen`` does not resolve to loopback addresses only.
            OSError: the address is in use.
        """
        # Resolved and checked here, where it is bound: the address literal is bound, so
        # a name is not resolved a second time (to something else) by the bind.
        where = resolve_loopback_listen(self.listen)
        server_class: type[_BoundedServer] = type(
            "_MetricsServer", (_BoundedServer,), {"address_family": where.family}
        )
        app = make_wsgi_app(self.metrics.registry)
        server = make_server(
            where.host,
            where.port,
            app if self.probe is None else _with_probes(app, self.probe),
            server_class,
            handler_class=_QuietHandler,
        )
        server.request_timeout_s = self.request_timeout_s
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        log.info("metrics on http://%s:%d/metrics", *self.address_or_raise())

    @property
    def active(self) -> int:
        """Scrapes being served now."""
        return 0 if self._server is None else self._server.active

    @property
    def refused(self) -> int:
        """Connections answered 503 because :data:`MAX_SCRAPES` scrapes were being served."""
        return 0 if self._server is None else self._server.refused

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
