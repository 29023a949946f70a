"""The daemon: sources -> intake (parse, group commit) -> outbox -> sync loop.

It owns the lifecycle of every part, in the order that keeps the good-read
promise: the outbox opens (and is checked) before any source starts, sources
stop before the committer drains, and the committer drains before the outbox
closes, so no acknowledged scan is ever lost on a clean stop, and a crash
loses nothing that was acknowledged because acknowledgement follows COMMIT.

The core imports nothing from Textual; the TUI observes and gives commands
through the control interface on a UNIX socket (see ``docs/control.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from drivers.registry import build_source
from scanner_agent import logs
from scanner_agent.bills import BillDesk, BillError
from scanner_agent.config import AgentConfig, load_config, read_credential, service_url
from scanner_agent.control.server import ControlServer
from scanner_agent.intake import GroupCommitter, ScanIntake
from scanner_agent.kernel import (
    Intake,
    Lane,
    RawScan,
    ScannerAgentError,
    ScanOutcome,
    SingleFlight,
    Source,
)
from scanner_agent.outbox import Outbox, OutboxThread, QueueStats
from scanner_agent.sdnotify import Notifier, watchdog_interval_s
from scanner_agent.sinks import build_sink, sink_names
from scanner_agent.sync import (
    Admission,
    Gate,
    MovableSink,
    PlatformAlarms,
    Sink,
    SinkContext,
    SyncLoop,
    SyncObserver,
)
from scanner_agent.times import iso

if TYPE_CHECKING:
    from scanner_agent.metrics import MetricsServer

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_S = 60.0


class DaemonState(enum.StrEnum):
    """Lifecycle of a :class:`Daemon`; a stopped daemon is not restarted."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class BoundIntake:
    """An :class:`Intake` that labels a source's scans with its action and bill."""

    def __init__(self, intake: ScanIntake, *, action: str, bill: str) -> None:
        self._intake = intake
        self.action = action
        self.bill = bill

    async def submit(self, scan: RawScan) -> ScanOutcome:
        """Submit with this source's labels."""
        return await self._intake.submit(scan, action=self.action, bill=self.bill)

    async def submit_many(self, scans: list[RawScan]) -> list[ScanOutcome]:
        """Submit frames that arrived together with this source's labels."""
        return await self._intake.submit_many(scans, action=self.action, bill=self.bill)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What :meth:`Daemon.reload` did."""

    applied: tuple[str, ...] = ()
    """Keys whose new value is in effect (``sync.url``, ``sync.token``, ``log_level``...)."""
    needs_restart: tuple[str, ...] = ()
    """Keys that changed in the file but take effect only after a restart."""
    error: str | None = None
    """Why the new config was refused (the old one is kept), or None."""


RELOADABLE = ("sync.url", "sync.token_file", "sync.token_env", "log_level", "metrics.listen")
"""Config keys :meth:`Daemon.reload` applies to a running daemon."""


class Daemon:
    """One running agent."""

    def __init__(
        self,
        cfg: AgentConfig,
        *,
        sources: list[tuple[Source, str, str]] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        config_path: Path | str | None = None,
    ) -> None:
        """Prepare (but do not start) the daemon.

        ``sources`` overrides the configured ones with ``(source, action, bill)``
        triples (used by the demo and tests to inject prepared sources);
        ``transport`` is passed to the HTTP client (tests only); ``config_path``
        is the file :meth:`reload` reads again (SIGHUP).
        """
        self.cfg = cfg
        self.config_path = Path(config_path) if config_path is not None else None
        self.state = DaemonState.NEW
        self.started_at: float | None = None
        self._override_sources = sources
        self._transport = transport
        self.sources: list[Source] = []
        self.outbox: Outbox | None = None
        self.thread: OutboxThread | None = None
        self.committer: GroupCommitter | None = None
        self.intake: ScanIntake | None = None
        self.sync: SyncLoop | None = None
        self._client: MovableSink | None = None
        """The sink when its service can move (Trace API v1), for ``sync.url`` reloads."""
        self._sink: Sink | None = None
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self.listeners: list[Callable[[RawScan, Any, ScanOutcome], None]] = [self._seen]
        """Observers of every scan outcome (status stream, TUI); must not block."""
        self.sync_observers: list[SyncObserver] = []
        """Observers of every batch request's duration (metrics); must not block."""
        self.metrics_server: MetricsServer | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.desk: BillDesk | None = None
        """Bills: the open one per action gets the scans (see :meth:`bill_for`)."""
        self.control: ControlServer | None = None
        self.control_error: str | None = None
        """Why the control interface is off (it never stops scanning)."""
        self._routes: dict[str, tuple[str, str]] = {}
        self._last_scan_at: dict[str, float] = {}
        # Slow work has threads of its own, never asyncio's default pool (docs/architecture.md).
        self.stats_lane = Lane("stats", workers=1, max_pending=2)
        """Outbox counts (``status``, ``queue.stats``, scrapes): one at a time, shared."""
        self.reload_lane = Lane("reload", workers=1, max_pending=2)
        """Reading the config file and the token again (SIGHUP)."""
        self.control_lane = Lane("control", workers=1, max_pending=8)
        """Control-socket work of some cost: long requests, codes to look up, CSV imports."""
        self._stats: SingleFlight[QueueStats] = SingleFlight(self._count)

    @property
    def device_id(self) -> str:
        """This device's id (``device_id`` in the config)."""
        return self.cfg.device_id

    # -- lifecycle -------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the daemon to stop cleanly (safe from signal handlers)."""
        self._stop.set()

    async def wait_ready(self) -> None:
        """Wait until the outbox is open and the sources are started."""
        await self._ready.wait()

    def bill_for(self, action: str, source_bill: str) -> str:
        """The bill a scan belongs to: its source's, else the bill open for the action
        on this device, else the default bill for the action (never none)."""
        if source_bill:
            return source_bill
        opened = self.desk.bill_for(action) if self.desk is not None else None
        return opened or self.cfg.default_bill(action)

    def route_of(self, source: str) -> tuple[str, str]:
        """``(action, bill)`` a source's next scan gets."""
        action, bill = self._routes.get(source, (self.cfg.scan.action, ""))
        return action, self.bill_for(action, bill)

    def source_actions(self) -> list[str]:
        """The action of each source's scans."""
        return [action for action, _bill in self._routes.values()]

    @property
    def admission(self) -> Admission:
        """What the sink in use takes (docs/platforms.md, "What each sink takes").

        The running sink's, never the config file's: after a reload it is always
        the rule of the sink that sends (a new ``sync.protocol`` takes effect,
        with its rule, at the restart that builds its sink).
        """
        if self._sink is None:
            raise RuntimeError("Failed to read the admission rule: the daemon has no sink yet")
        return self._sink.admission

    def _admit(self, bill: str) -> Gate:
        """What the sink in use takes onto ``bill`` (asked by the intake before each commit)."""
        opened = self.desk.opened(bill) if self.desk is not None else None
        return self.admission.gate(bill, opened)

    async def _flush_committer(self) -> None:
        """Every scan queued so far committed (BillDesk.close: none joins a closed bill)."""
        if self.committer is not None:
            await self.committer.flush()

    def _seen(self, scan: RawScan, _result: Any, _outcome: ScanOutcome) -> None:
        self._last_scan_at[scan.source] = time.time()

    async def run(self, *, on_ready: Callable[[], None] | None = None) -> None:
        """Run until :meth:`request_stop` (or SIGTERM/SIGINT when installed).

        Raises:
            ScannerAgentError: the outbox cannot open or a source cannot start.
        """
        if self.state is not DaemonState.NEW:
            raise RuntimeError(f"Failed to run daemon: it is {self.state.value}, not new")
        self.state = DaemonState.STARTING
        cfg = self.cfg
        outbox = await asyncio.to_thread(
            functools.partial(
                Outbox.open,
                cfg.outbox.path,
                min_free_bytes=cfg.outbox.min_free_mb * 1024 * 1024,
                rejects_max_rows=cfg.outbox.rejects_max_rows,
            )
        )
        self.outbox = outbox
        # Outbox.open logged its alarms (once) as it raised them; status shows them.
        self.thread = thread = OutboxThread(outbox)
        tasks: list[asyncio.Task[None]] = []
        try:
            self._sink = self._build_sink(thread)
            if isinstance(self._sink, PlatformAlarms):
                await self._sink.load_alarms()
                for alarm in self._sink.alarms():
                    log.error("ALARM: %s", alarm)
            names = sink_names(cfg)
            self.sync = SyncLoop(
                thread,
                self._sink,
                cfg.sync,
                token_reader=self._read_token,
                platform=names.platform,
                credential=names.credential,
                credential_source=names.source,
            )
            self.desk = BillDesk(
                thread,
                device_id=cfg.device_id,
                on_close=self.sync.wake,
                before_close=self._flush_committer,
                bill_problem=lambda number, bill: self.admission.bill_problem(number, bill),
                parse_lane=self.control_lane,
            )
            await self.desk.start()
            self.committer = GroupCommitter(
                thread,
                max_rows=cfg.outbox.commit_max_rows,
                linger_s=cfg.outbox.commit_interval_ms / 1000.0,
                reject_duplicates=cfg.scan.reject_duplicates,
                on_commit=self.sync.wake,
            )
            self.intake = ScanIntake(
                self.committer,
                device_id=cfg.device_id,
                bill_for=self.bill_for,
                default_action=cfg.scan.action,
                listeners=self.listeners,
                admit=self._admit,
            )
            bound = self._build_sources(self.intake)
            committer_task = asyncio.create_task(self.committer.run(), name="committer")
            tasks.append(asyncio.create_task(self.sync.run(), name="sync"))
            tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
            tasks.append(asyncio.create_task(self._systemd(), name="systemd"))
            source_tasks = [
                asyncio.create_task(src.run(intake), name=f"source {src.name}")
                for src, intake in bound
            ]
            await self._wait_sources_started(source_tasks)
            await self._start_control()
            self.state = DaemonState.RUNNING
            self.started_at = time.time()
            self._ready.set()
            log.info(
                "scanner-agent running: device %s, %d sources, outbox %s, syncing to %s (%s)",
                cfg.device_id,
                len(bound),
                cfg.outbox.path,
                service_url(cfg)[1],
                cfg.sync.protocol,
            )
            self._start_metrics()
            if on_ready is not None:
                on_ready()
            stop = asyncio.create_task(self._stop.wait())
            failed = await self._watch(stop, source_tasks)
            self.state = DaemonState.STOPPING
            await self._stop_control()
            # Sources first: nothing new arrives while the committer drains.
            for t in source_tasks:
                t.cancel()
            await asyncio.gather(*source_tasks, return_exceptions=True)
            committer_task.cancel()
            await asyncio.gather(committer_task, return_exceptions=True)
            if failed is not None:
                raise failed
        finally:
            self.state = DaemonState.STOPPING
            self._stop_metrics()
            self._stats.cancel()
            for t in [*tasks, *self._background]:
                t.cancel()
            await asyncio.gather(*tasks, *self._background, return_exceptions=True)
            await self._stop_control()
            self.reload_lane.shutdown()
            self.control_lane.shutdown()
            # A count still running reads the outbox: let it end before the file closes.
            await self.stats_lane.aclose()
            if self._sink is not None:
                await self._sink.aclose()
            if self.intake is not None:
                # The parse thread ends once its queued frames are parsed; it is waited for
                # on a thread of its own, never asyncio's default pool, which may be stuck.
                closing = Lane("parse-close", workers=1, max_pending=1)
                try:
                    await closing.run(self.intake.close)
                finally:
                    closing.shutdown()
            thread.shutdown()
            outbox.close()
            self.state = DaemonState.STOPPED
            log.info("scanner-agent stopped")

    def _read_token(self) -> str:
        """The sink's current credential (from the config in effect), registered for log
        redaction: the bearer token, or the 码上放心 app secret."""
        token = read_credential(self.cfg)
        logs.add_secret(token)
        return token

    def _build_sink(self, thread: OutboxThread) -> Sink:
        """The sink for ``sync.protocol`` (:func:`scanner_agent.sinks.build_sink`).

        Raises:
            ConfigError: its credential cannot be read.
        """
        sink = build_sink(
            self.cfg, SinkContext(thread, self._read_token(), self._transport, self.sync_observers)
        )
        self._client = sink if isinstance(sink, MovableSink) else None
        return sink

    # -- metrics -----------------------------------------------------------------

    def _start_metrics(self) -> None:
        """Serve ``[metrics] listen`` if set; a failure is logged, never fatal."""
        listen = self.cfg.metrics.listen
        if not listen:
            return
        # Imported only when configured: prometheus-client stays unloaded otherwise.
        from scanner_agent.health import HealthProbe
        from scanner_agent.metrics import AgentMetrics, MetricsServer, loop_snapshot

        metrics = AgentMetrics(loop_snapshot(self, asyncio.get_running_loop()))
        probe = HealthProbe(metrics.snapshot, self.cfg.outbox.path, self.cfg.outbox.min_free_mb)
        server = MetricsServer(metrics, listen, probe)
        try:
            server.start()
        except (OSError, ScannerAgentError) as exc:
            log.error("metrics: failed to listen on %s: %s", listen, exc)
            return
        self.sync_observers.append(metrics.observe_sync)
        self.metrics_server = server

    def _stop_metrics(self) -> None:
        server, self.metrics_server = self.metrics_server, None
        if server is not None:
            with contextlib.suppress(ValueError):
                self.sync_observers.remove(server.metrics.observe_sync)
            server.stop()

    # -- reload ------------------------------------------------------------------

    def request_reload(self) -> None:
        """Reload the config file soon (safe from signal handlers: SIGHUP).

        During start-up the reload waits until the daemon is ready; while
        stopping it is ignored.
        """
        if self.state in (DaemonState.STOPPING, DaemonState.STOPPED):
            log.warning("reload ignored: the daemon is %s", self.state.value)
            return

        async def when_ready() -> None:
            await self._ready.wait()
            try:
                await self.reload()
            except Exception:  # a reload must never die silently, whatever it met
                log.exception("reload failed; keeping the running config")

        task = asyncio.get_running_loop().create_task(when_ready(), name="reload")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def reload(self) -> ReloadResult:
        """Read the config file again and apply what can change while running.

        Applied at once: the sync target (``sync.url``), the token (re-read
        from ``sync.token_file``/``token_env`` even when the config is
        unchanged, so SIGHUP after a token rotation is enough), ``log_level``
        and ``metrics.listen``.  Every other changed key is logged as needing
        a restart.  A config that fails to load or validate, or whose token
        cannot be read, is logged and the running one kept.
        """
        if self.config_path is None:
            return self._refuse("no config file to reload (the daemon was started without one)")
        if self.sync is None or self.state is not DaemonState.RUNNING:
            return self._refuse(f"the daemon is {self.state.value}, not running")
        try:
            new = await self.reload_lane.run(load_config, self.config_path)
            token = await self.reload_lane.run(read_credential, new)
        except ScannerAgentError as exc:
            return self._refuse(str(exc))
        logs.add_secret(token)
        old = self.cfg
        changed = _changed_keys(old, new)
        applied: list[str] = []
        if new.sync.url != old.sync.url and self._client is not None:
            self._client.set_base_url(new.sync.url)
            applied.append("sync.url")
        sync_cfg = dataclasses.replace(
            old.sync, url=new.sync.url, token_file=new.sync.token_file, token_env=new.sync.token_env
        )
        self.cfg = dataclasses.replace(
            old, sync=sync_cfg, log_level=new.log_level, metrics=new.metrics
        )
        applied.extend(k for k in ("sync.token_file", "sync.token_env") if k in changed)
        if self.sync.set_token(token):
            applied.append("sync.token")
        if new.log_level != old.log_level:
            logs.set_level(new.log_level)
            applied.append("log_level")
        if new.metrics != old.metrics:
            self._stop_metrics()
            self._start_metrics()
            applied.append("metrics.listen")
        restart = tuple(k for k in changed if k not in RELOADABLE)
        if restart:
            log.warning(
                "reload: %s changed; restart the service to apply (systemctl restart scanner-agent)",
                ", ".join(restart),
            )
        log.info("reload: applied %s", ", ".join(applied) or "nothing (no change)")
        return ReloadResult(applied=tuple(applied), needs_restart=restart)

    def _refuse(self, why: str) -> ReloadResult:
        log.error("reload: %s; keeping the running config", why)
        return ReloadResult(error=why)

    def _build_sources(self, intake: ScanIntake) -> list[tuple[Source, Intake]]:
        out: list[tuple[Source, Intake]] = []
        if self._override_sources is not None:
            for src, action, bill in self._override_sources:
                out.append(
                    (src, BoundIntake(intake, action=action or self.cfg.scan.action, bill=bill))
                )
        else:
            for i, sc in enumerate(self.cfg.sources):
                src = build_source(sc.type, sc.options, name=sc.name, where=f"source[{i}]")
                out.append(
                    (
                        src,
                        BoundIntake(intake, action=sc.action or self.cfg.scan.action, bill=sc.bill),
                    )
                )
        self.sources = [s for s, _ in out]
        self._routes = {s.name: (i.action, i.bill) for s, i in out if isinstance(i, BoundIntake)}
        return out

    async def _start_control(self) -> None:
        """Serve the control socket; a failure is logged and shown, scanning goes on."""
        if not self.cfg.control.socket:
            return
        server = ControlServer(self, self.cfg.control)
        try:
            await server.start()
        except ScannerAgentError as exc:
            self.control_error = str(exc)
            log.warning("control interface off: %s", exc)
            return
        self.control = server
        self.listeners.append(server.on_scan)
        assert self.desk is not None
        self.desk.listeners.append(server.on_bill)

    async def _stop_control(self) -> None:
        server, self.control = self.control, None
        if server is None:
            return
        with contextlib.suppress(ValueError):
            self.listeners.remove(server.on_scan)
        await server.stop()

    async def _wait_sources_started(self, tasks: list[asyncio.Task[None]]) -> None:
        """Wait until each source has started, or fail if one cannot (port in use, missing file).

        A source that exposes a ``started`` (or, for TCP, ``listening``) event is
        waited for until it is set or the source fails; readiness is never a guess
        about timing.  Sources without one get a few loop turns to fail early.
        """
        for _ in range(10):
            await asyncio.sleep(0)
        for src, t in zip(self.sources, tasks, strict=True):
            started = getattr(src, "started", None) or getattr(src, "listening", None)
            if isinstance(started, asyncio.Event):
                waiter = asyncio.create_task(started.wait())
                await asyncio.wait({waiter, t}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
            if t.done() and not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                raise ScannerAgentError(f"Failed to start source {src.name}: {exc}") from exc

    async def _watch(
        self, stop: asyncio.Task[bool], source_tasks: list[asyncio.Task[None]]
    ) -> BaseException | None:
        """Wait for a stop request; a source dying with an error stops the daemon."""
        pending: set[asyncio.Task[Any]] = {stop, *source_tasks}
        while True:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if stop in done:
                return None
            for t in done:
                exc = t.exception() if not t.cancelled() else None
                if exc is not None:
                    log.error("source task %s failed: %s", t.get_name(), exc)
                    stop.cancel()
                    return ScannerAgentError(f"{t.get_name()} failed: {exc}")
            if pending == {stop}:
                # Every source has finished (e.g. a replay); keep syncing until stopped.
                pass

    async def _housekeeping(self) -> None:
        """Prune delivered rows and refusal records past retention, checkpoint the WAL, in small steps.

        The checkpoint never waits for a lock (see :meth:`Outbox.checkpoint`): it
        runs on the outbox thread, where a wait would hold up every scan's ACK.
        It empties the WAL file once a tick passes with nothing written.
        """
        assert self.thread is not None
        outbox = self.thread.outbox
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            try:
                cutoff = datetime.now(UTC) - timedelta(days=self.cfg.outbox.retention_days)
                # Small steps, each its own short transaction, with scans let through between.
                for _ in range(10_000):
                    if await self.thread.call(outbox.prune_delivered, cutoff, limit=500) < 500:
                        break
                    await asyncio.sleep(0.05)
                cutoff = datetime.now(UTC) - timedelta(days=self.cfg.outbox.rejects_retention_days)
                for _ in range(10_000):
                    if await self.thread.call(outbox.prune_rejects, cutoff, limit=500) < 500:
                        break
                    await asyncio.sleep(0.05)
                done = await self.thread.call(outbox.checkpoint)
                if done.busy:
                    log.debug(
                        "housekeeping: WAL %s checkpoint stopped at a reader: %s", done.mode, done
                    )
            except ScannerAgentError as exc:
                log.warning("housekeeping: %s", exc)

    async def _systemd(self) -> None:
        """Tell systemd we are ready, ping its watchdog from this loop, publish STATUS=.

        The pings come from the event loop itself, so a stalled loop (a blocked
        call, a deadlock) stops them and systemd restarts the service.
        """
        notifier = Notifier()
        if not notifier.enabled:
            return
        await self._ready.wait()
        notifier.notify(ready=1, status="running")
        interval = watchdog_interval_s()
        period = min(interval, 5.0) if interval else 5.0
        last_status = ""
        try:
            while True:
                if interval:
                    notifier.notify(watchdog=1)
                try:
                    # Counts one period old will do for a status line: a large outbox's count
                    # (seconds) then runs at most once a period, shared with other callers.
                    st = await self.status(max_age_s=period)
                    line = f"backlog {st['backlog']}, link {st['link']}, scanned {st['scanned']}"
                except ScannerAgentError as exc:
                    line = f"outbox error: {exc}"
                if line != last_status:
                    notifier.notify(status=line)
                    last_status = line
                await asyncio.sleep(period)
        finally:
            notifier.notify(stopping=1)
            notifier.close()

    async def acknowledge(self, bill: str, note: str) -> list[dict[str, str]]:
        """Clear the platform's alarm about ``bill`` (an operator handled it); the problems cleared.

        Raises:
            BillError: the sink reports no such problems (``conflict``), or none of
                ``bill`` (``not_found``).
            ScannerAgentError: the outbox cannot be written.
        """
        sink = self._sink
        if not isinstance(sink, PlatformAlarms):
            raise BillError(
                f"Failed to acknowledge bill {bill!r}: sync.protocol "
                f"{self.cfg.sync.protocol!r} reports no processing failures",
                code="conflict",
            )
        cleared = await sink.acknowledge(bill, note)
        if not cleared:
            raise BillError(
                f"Failed to acknowledge bill {bill!r}: the platform reported no "
                "unacknowledged processing failure of it (`scanner-agent bill failed` lists them)",
                code="not_found",
            )
        log.info("bill %s: processing failure acknowledged (%s)", bill, note or "no note")
        return [dataclasses.asdict(f) for f in cleared]

    # -- observation -------------------------------------------------------------

    def device_status(self) -> list[dict[str, Any]]:
        """Connected/model/last scan of each hardware source (those that report it)."""
        return [d for d in (_device_status(s) for s in self.sources) if d is not None]

    async def queue_stats(self, max_age_s: float = 0.0) -> QueueStats:
        """Outbox counts read no earlier than ``max_age_s`` before the call.

        Callers asking at the same time share one count (:class:`SingleFlight`),
        so a storm of scrapes costs one count at a time and ``status`` waits for
        at most the count in progress and the next.
        """
        return await self._stats.get(max_age_s)

    async def _count(self) -> QueueStats:
        assert self.thread is not None
        # On the stats lane, not the outbox thread: counting a month of audit rows must
        # never delay a commit; nor asyncio's default pool, which other work shares.
        return await self.stats_lane.run(self.thread.outbox.stats)

    async def status(self, max_age_s: float = 0.0) -> dict[str, Any]:
        """A JSON-ready snapshot for status lines, ``scanner-agent status`` and the TUI.

        ``max_age_s``: how old the outbox counts may be (metrics scrapes accept a few seconds).
        Every time in it is ISO 8601 with an offset (:func:`scanner_agent.times.iso`);
        control protocol version 1 clients get Unix times back (``control._v1``).
        """
        stats = await self.queue_stats(max_age_s)
        counts = self.intake.stats if self.intake else None
        sync = self.sync
        snap = sync.snapshot() if sync else None
        return {
            "device_id": self.cfg.device_id,
            "state": self.state.value,
            "uptime_s": round(time.time() - self.started_at, 1) if self.started_at else 0,
            "link": sync.state.value if sync else "unknown",
            # The last send error stays on record; ``last_error_current`` says whether it
            # still holds (false once a later batch was delivered).
            "last_error": snap["last_error"] if snap else None,
            "last_error_at": snap["last_error_at"] if snap else None,
            "last_error_current": snap["last_error_current"] if snap else False,
            "backlog": stats.backlog,
            "held": stats.held,
            "removed": stats.removed,
            "queue": stats.counts,
            "oldest_pending_at": stats.oldest_pending_at,
            "scanned": counts.scanned if counts else 0,
            "accepted": counts.accepted if counts else 0,
            "refused": dict(counts.refused) if counts else {},
            # Refusals counted but not written: free space was below twice the reserve.
            "refusals_dropped": self.outbox.refusals_dropped if self.outbox else 0,
            "sources": [s.name for s in self.sources],
            "devices": self.device_status(),
            # Each TCP source's bounds at work: connections refused, evicted, timed out...
            "tcp": [c for c in (_counters(s) for s in self.sources) if c is not None],
            "last_scan_at": {name: iso(at) for name, at in self._last_scan_at.items()},
            "bills": [
                {
                    "number": b.number,
                    "type": b.type,
                    "action": b.action,
                    "state": b.state,
                    "opened_at": b.opened_at,
                }
                for b in (self.desk.open_bills if self.desk else [])
            ],
            "control": {
                "socket": self.cfg.control.socket,
                "serving": self.control is not None,
                "error": self.control_error,
            },
            "alarms": [
                *(self.outbox.alarms if self.outbox else []),
                *([self.intake.full_alarm] if self.intake and self.intake.full_alarm else []),
                *([sync.stats.alarm] if sync and sync.stats.alarm else []),
                *(self._sink.alarms() if isinstance(self._sink, PlatformAlarms) else []),
            ],
            "sync": snap,
        }


def _changed_keys(old: AgentConfig, new: AgentConfig) -> list[str]:
    """Dotted keys whose value differs (a section's fields, or ``source`` as a whole)."""
    out: list[str] = []
    for f in dataclasses.fields(old):
        a, b = getattr(old, f.name), getattr(new, f.name)
        if a == b:
            continue
        if dataclasses.is_dataclass(a) and not isinstance(a, type):
            out.extend(
                f"{f.name}.{g.name}"
                for g in dataclasses.fields(a)
                if getattr(a, g.name) != getattr(b, g.name)
            )
        else:
            out.append("source" if f.name == "sources" else f.name)
    return out


def _counters(source: Source) -> dict[str, Any] | None:
    """A source's counters (a TCP source's :meth:`drivers.tcp.TcpSource.counters`), if any."""
    counters = getattr(source, "counters", None)
    if not callable(counters):
        return None
    value: dict[str, Any] = counters()
    return value


def _device_status(source: Source) -> dict[str, Any] | None:
    status = getattr(source, "status", None)
    if not callable(status):
        return None
    snapshot = status()
    if dataclasses.is_dataclass(snapshot) and not isinstance(snapshot, type):
        device = dataclasses.asdict(snapshot)
        if "last_scan_at" in device:  # a driver keeps time.time(); reports give ISO 8601
            device["last_scan_at"] = iso(device["last_scan_at"])
        return device
    return None


def install_signal_handlers(daemon: Daemon) -> None:
    """SIGTERM and SIGINT stop the daemon cleanly; SIGHUP reloads its config."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, daemon.request_stop)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
