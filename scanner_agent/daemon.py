"""The daemon: sources -> intake (parse, group commit) -> outbox -> sync loop.

It owns the lifecycle of every part, in the order that keeps the good-read
promise: the outbox opens (and is checked) before any source starts, sources
stop before the committer drains, and the committer drains before the outbox
closes, so no acknowledged scan is ever lost on a clean stop, and a crash
loses nothing that was acknowledged because acknowledgement follows COMMIT.

The core imports nothing from Textual; the TUI observes through a control
interface (see ``docs/control.md`` once it lands).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from drivers.base import Intake, RawScan, ScanOutcome, Source
from drivers.registry import build_source
from scanner_agent.config import AgentConfig
from scanner_agent.errors import ScannerAgentError
from scanner_agent.intake import GroupCommitter, OutboxThread, ScanIntake
from scanner_agent.outbox import Outbox, QueueStats
from scanner_agent.sdnotify import Notifier, watchdog_interval_s
from scanner_agent.sync import SyncLoop, TraceApiClient

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


class Daemon:
    """One running agent."""

    def __init__(
        self,
        cfg: AgentConfig,
        *,
        sources: list[tuple[Source, str, str]] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Prepare (but do not start) the daemon.

        ``sources`` overrides the configured ones with ``(source, action, bill)``
        triples (used by the demo and tests to inject prepared sources);
        ``transport`` is passed to the HTTP client (tests only).
        """
        self.cfg = cfg
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
        self._client: TraceApiClient | None = None
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self.listeners: list[Callable[[RawScan, Any, ScanOutcome], None]] = []
        """Observers of every scan outcome (status stream, TUI); must not block."""

    # -- lifecycle -------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the daemon to stop cleanly (safe from signal handlers)."""
        self._stop.set()

    async def wait_ready(self) -> None:
        """Wait until the outbox is open and the sources are started."""
        await self._ready.wait()

    def bill_for(self, action: str, source_bill: str) -> str:
        """The bill a scan belongs to: its source's, else the default for the action."""
        return source_bill or self.cfg.default_bill(action)

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
            Outbox.open, cfg.outbox.path, min_free_bytes=cfg.outbox.min_free_mb * 1024 * 1024
        )
        self.outbox = outbox
        for alarm in outbox.alarms:
            log.error("ALARM: %s", alarm)
        self.thread = thread = OutboxThread(outbox)
        tasks: list[asyncio.Task[None]] = []
        try:
            self._client = TraceApiClient(
                cfg.sync,
                token=cfg.sync.read_token(),
                device_id=cfg.device_id,
                transport=self._transport,
            )
            self.sync = SyncLoop(thread, self._client, cfg.sync)
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
            self.state = DaemonState.RUNNING
            self.started_at = time.time()
            self._ready.set()
            log.info(
                "scanner-agent running: device %s, %d sources, outbox %s, syncing to %s",
                cfg.device_id,
                len(bound),
                cfg.outbox.path,
                cfg.sync.url,
            )
            if on_ready is not None:
                on_ready()
            stop = asyncio.create_task(self._stop.wait())
            failed = await self._watch(stop, source_tasks)
            self.state = DaemonState.STOPPING
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
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._client is not None:
                await self._client.aclose()
            thread.shutdown()
            outbox.close()
            self.state = DaemonState.STOPPED
            log.info("scanner-agent stopped")

    def _build_sources(self, intake: ScanIntake) -> list[tuple[Source, Intake]]:
        out: list[tuple[Source, Intake]] = []
        if self._override_sources is not None:
            for src, action, bill in self._override_sources:
                out.append(
                    (src, BoundIntake(intake, action=action or self.cfg.scan.action, bill=bill))
                )
        else:
            for i, sc in enumerate(self.cfg.sources):
                src = build_source(sc, f"source[{i}]")
                out.append(
                    (
                        src,
                        BoundIntake(intake, action=sc.action or self.cfg.scan.action, bill=sc.bill),
                    )
                )
        self.sources = [s for s, _ in out]
        return out

    async def _wait_sources_started(self, tasks: list[asyncio.Task[None]]) -> None:
        """Give sources a moment to fail on start (port in use, missing file)."""
        for _ in range(10):
            await asyncio.sleep(0)
        for src, t in zip(self.sources, tasks, strict=True):
            listening = getattr(src, "listening", None)
            if isinstance(listening, asyncio.Event):
                waiter = asyncio.create_task(listening.wait())
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
        """Prune delivered rows past retention and checkpoint the WAL, in small steps."""
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
                await self.thread.call(outbox.checkpoint)
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
                    st = await self.status()
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

    # -- observation -------------------------------------------------------------

    def device_status(self) -> list[dict[str, Any]]:
        """Connected/model/last scan of each hardware source (those that report it)."""
        return [d for d in (_device_status(s) for s in self.sources) if d is not None]

    async def queue_stats(self) -> QueueStats:
        """Outbox counts (runs on the outbox thread)."""
        assert self.thread is not None
        return await self.thread.call(self.thread.outbox.stats)

    async def status(self) -> dict[str, Any]:
        """A JSON-ready snapshot for status lines, ``scanner-agent status`` and the TUI."""
        stats = await self.queue_stats()
        counts = self.intake.stats if self.intake else None
        sync = self.sync
        return {
            "device_id": self.cfg.device_id,
            "state": self.state.value,
            "uptime_s": round(time.time() - self.started_at, 1) if self.started_at else 0,
            "link": sync.state.value if sync else "unknown",
            "last_error": sync.stats.last_error if sync else None,
            "backlog": stats.backlog,
            "queue": stats.counts,
            "oldest_pending_at": stats.oldest_pending_at,
            "scanned": counts.scanned if counts else 0,
            "accepted": counts.accepted if counts else 0,
            "refused": dict(counts.refused) if counts else {},
            "sources": [s.name for s in self.sources],
            "devices": self.device_status(),
            "alarms": [
                *(self.outbox.alarms if self.outbox else []),
                *([self.intake.full_alarm] if self.intake and self.intake.full_alarm else []),
                *([sync.stats.alarm] if sync and sync.stats.alarm else []),
            ],
            "sync": sync.snapshot() if sync else None,
        }


def _device_status(source: Source) -> dict[str, Any] | None:
    status = getattr(source, "status", None)
    if not callable(status):
        return None
    snapshot = status()
    if dataclasses.is_dataclass(snapshot) and not isinstance(snapshot, type):
        return dataclasses.asdict(snapshot)
    return None


def install_signal_handlers(daemon: Daemon) -> None:
    """SIGTERM and SIGINT stop the daemon cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, daemon.request_stop)
