"""One running agent: :class:`Daemon`, its lifecycle and the answers it gives."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from scanner_agent.bills import BillDesk, BillError
from scanner_agent.config import AgentConfig, load_config, read_credential, service_url
from scanner_agent.control import AgentStatus, ControlStatus
from scanner_agent.control.server import ControlServer
from scanner_agent.daemon._housekeeping import HOUSEKEEPING_INTERVAL_S, housekeeping, systemd
from scanner_agent.daemon._lifecycle import (
    DaemonState,
    cancel_all,
    install_handlers,
    wait_sources_started,
    watch,
)
from scanner_agent.daemon._reload import RELOADABLE, ReloadResult, changed_keys, in_effect
from scanner_agent.daemon._services import start_metrics, stop_metrics
from scanner_agent.daemon._status import Parts as StatusParts
from scanner_agent.daemon._status import build_status
from scanner_agent.daemon._wiring import (
    Hooks,
    Parts,
    bind_sources,
    compose,
    make_sink,
    open_outbox,
    read_token,
)
from scanner_agent.intake import GroupCommitter, ScanIntake
from scanner_agent.kernel import (
    Lane,
    RawScan,
    ScannerAgentError,
    ScanOutcome,
    SingleFlight,
    Source,
)
from scanner_agent.ops import logs
from scanner_agent.outbox import Outbox, OutboxThread, QueueStats
from scanner_agent.sync import Admission, MovableSink, PlatformAlarms, Sink, SyncLoop, SyncObserver

if TYPE_CHECKING:
    from scanner_agent.ops.metrics import MetricsServer

log = logging.getLogger(__package__)  # the daemon's one logger name, as in its log lines


class Daemon:
    """One running agent."""

    housekeeping_interval_s: float = HOUSEKEEPING_INTERVAL_S
    """Seconds between two rounds of outbox housekeeping (tests make it short)."""

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

    # -- routing -------------------------------------------------------------------

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

    def _seen(self, scan: RawScan, _result: Any, _outcome: ScanOutcome) -> None:
        self._last_scan_at[scan.source] = time.time()

    # -- lifecycle -------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the daemon to stop cleanly (safe from signal handlers)."""
        self._stop.set()

    async def wait_ready(self) -> None:
        """Wait until the outbox is open and the sources are started."""
        await self._ready.wait()

    async def run(self, *, on_ready: Callable[[], None] | None = None) -> None:
        """Run until :meth:`request_stop` (or SIGTERM/SIGINT when installed).

        The order keeps the good-read promise: the outbox opens (and is checked)
        before any source starts; sources stop before the committer drains; the
        committer drains before the outbox closes.

        Raises:
            ScannerAgentError: the outbox cannot open or a source cannot start.
        """
        if self.state is not DaemonState.NEW:
            raise RuntimeError(f"Failed to run daemon: it is {self.state.value}, not new")
        self.state = DaemonState.STARTING
        outbox = await asyncio.to_thread(functools.partial(open_outbox, self.cfg))
        self.outbox = outbox
        self.thread = thread = OutboxThread(outbox)
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._serve(thread, tasks, on_ready)
        finally:
            await self._shut_down(tasks, thread, outbox)

    async def _serve(
        self,
        thread: OutboxThread,
        tasks: list[asyncio.Task[None]],
        on_ready: Callable[[], None] | None,
    ) -> None:
        """Compose and start every part, run until asked to stop, then stop the sources and
        drain the committer (``tasks`` gets the background tasks, for :meth:`_shut_down`)."""
        parts = await self._compose(thread)
        bound = bind_sources(self.cfg, parts.intake, self._override_sources)
        self.sources = [s for s, _ in bound]
        self._routes = {s.name: (i.action, i.bill) for s, i in bound}
        committer_task = asyncio.create_task(parts.committer.run(), name="committer")
        tasks.append(asyncio.create_task(parts.sync.run(), name="sync"))
        tasks.append(asyncio.create_task(self._keep_house(thread), name="housekeeping"))
        tasks.append(asyncio.create_task(systemd(self._ready, self.agent_status), name="systemd"))
        source_tasks = [
            asyncio.create_task(src.run(intake), name=f"source {src.name}") for src, intake in bound
        ]
        await wait_sources_started(self.sources, source_tasks)
        await self._start_control()
        self.state = DaemonState.RUNNING
        self.started_at = time.time()
        self._ready.set()
        log.info(
            "scanner-agent running: device %s, %d sources, outbox %s, syncing to %s (%s)",
            self.cfg.device_id,
            len(bound),
            self.cfg.outbox.path,
            service_url(self.cfg)[1],
            self.cfg.sync.protocol,
        )
        self._start_metrics()
        if on_ready is not None:
            on_ready()
        failed = await watch(asyncio.create_task(self._stop.wait()), source_tasks)
        self.state = DaemonState.STOPPING
        await self._stop_control()
        # Sources first: nothing new arrives while the committer drains.
        await cancel_all(source_tasks)
        await cancel_all([committer_task])
        if failed is not None:
            raise failed

    async def _compose(self, thread: OutboxThread) -> Parts:
        hooks = Hooks(
            token_reader=self._read_token,
            bill_for=self.bill_for,
            listeners=self.listeners,
            sync_observers=self.sync_observers,
            control_lane=self.control_lane,
            transport=self._transport,
        )
        # The sink is kept at once: a later part failing to start still closes it.
        self._sink = sink = make_sink(self.cfg, thread, hooks)
        parts = await compose(self.cfg, thread, hooks, sink)
        self._client, self.sync = parts.movable, parts.sync
        self.desk, self.committer, self.intake = parts.desk, parts.committer, parts.intake
        return parts

    async def _shut_down(
        self, tasks: list[asyncio.Task[None]], thread: OutboxThread, outbox: Outbox
    ) -> None:
        """Stop what runs, whatever got started, and close the outbox last."""
        self.state = DaemonState.STOPPING
        self._stop_metrics()
        self._stats.cancel()
        await cancel_all([*tasks, *self._background])
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
        """The sink's current credential, from the config in effect (a reload may move it)."""
        return read_token(self.cfg)

    async def _keep_house(self, thread: OutboxThread) -> None:
        await housekeeping(thread, self.cfg.outbox, self.housekeeping_interval_s)

    # -- servers ---------------------------------------------------------------------

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

    def _start_metrics(self) -> None:
        self.metrics_server = start_metrics(self.cfg, self.agent_status, self.sync_observers)

    def _stop_metrics(self) -> None:
        server, self.metrics_server = self.metrics_server, None
        stop_metrics(server, self.sync_observers)

    # -- reload ----------------------------------------------------------------------

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
        changed = changed_keys(old, new)
        applied: list[str] = []
        if new.sync.url != old.sync.url and self._client is not None:
            self._client.set_base_url(new.sync.url)
            applied.append("sync.url")
        self.cfg = in_effect(old, new)
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

    # -- bills -----------------------------------------------------------------------

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

    # -- observation -----------------------------------------------------------------

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

    async def agent_status(self, max_age_s: float = 0.0) -> AgentStatus:
        """The agent's status now, typed; built here and nowhere else.

        ``max_age_s``: how old the outbox counts may be (metrics scrapes accept a few seconds).

        Raises:
            ScannerAgentError: the outbox cannot be counted.
        """
        stats = await self.queue_stats(max_age_s)
        return build_status(self._status_parts(), stats)

    async def status(self, max_age_s: float = 0.0) -> dict[str, Any]:
        """:meth:`agent_status` in its one JSON form (:meth:`AgentStatus.to_json`), the
        ``status`` command's result; every time in it is ISO 8601 with an offset."""
        return (await self.agent_status(max_age_s)).to_json()

    def _status_parts(self) -> StatusParts:
        control = self.control
        counters = control.counters() if control is not None else {}
        return StatusParts(
            device_id=self.cfg.device_id,
            state=self.state.value,
            started_at=self.started_at,
            sources=self.sources,
            last_scan_at=self._last_scan_at,
            outbox=self.outbox,
            intake=self.intake,
            sync=self.sync,
            sink=self._sink,
            desk=self.desk,
            control=ControlStatus(
                socket=self.cfg.control.socket,
                serving=control is not None,
                error=self.control_error,
                **counters,
            ),
        )


def install_signal_handlers(daemon: Daemon) -> None:
    """SIGTERM and SIGINT stop the daemon cleanly; SIGHUP reloads its config."""
    install_handlers(daemon.request_stop, daemon.request_reload)
