"""Composition: the parts of one agent built from its config and joined together.

The outbox (and its thread) first, then the sink for ``sync.protocol``, the
sync loop that feeds it, the bill desk, the group committer and the scan
intake, and last the sources, each bound to the intake with its action and
bill.  Nothing here starts a task: :class:`scanner_agent.daemon.Daemon.run`
starts them in the order that keeps the good-read promise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from drivers.registry import build_source
from scanner_agent.bills import BillDesk
from scanner_agent.config import AgentConfig, read_credential
from scanner_agent.intake import GroupCommitter, ScanIntake
from scanner_agent.kernel import Lane, RawScan, ScanOutcome, Source
from scanner_agent.ops import logs
from scanner_agent.outbox import Outbox, OutboxThread
from scanner_agent.sinks import build_sink, sink_names
from scanner_agent.sync import (
    Gate,
    MovableSink,
    PlatformAlarms,
    Sink,
    SinkContext,
    SyncLoop,
    SyncObserver,
)

log = logging.getLogger(__package__)  # the daemon's one logger name, as in its log lines


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


def open_outbox(cfg: AgentConfig) -> Outbox:
    """Open (and check) the outbox file; blocking, so the daemon runs it on a thread.

    Raises:
        ScannerAgentError: the outbox cannot be opened.
    """
    # Outbox.open logs its alarms (once) as it raises them; status shows them.
    return Outbox.open(
        cfg.outbox.path,
        min_free_bytes=cfg.outbox.min_free_mb * 1024 * 1024,
        rejects_max_rows=cfg.outbox.rejects_max_rows,
    )


def read_token(cfg: AgentConfig) -> str:
    """The sink's current credential, registered for log redaction: the bearer token, or the
    码上放心 app secret.

    Raises:
        ConfigError: it cannot be read.
    """
    token = read_credential(cfg)
    logs.add_secret(token)
    return token


@dataclass(frozen=True, slots=True)
class Hooks:
    """What the parts call back into the daemon for."""

    token_reader: Callable[[], str]
    """The credential in effect now (a reload may change its file)."""
    bill_for: Callable[[str, str], str]
    """The bill a scan with ``(action, source bill)`` belongs to."""
    listeners: list[Callable[[RawScan, Any, ScanOutcome], None]]
    """Observers of every scan outcome (status, control events)."""
    sync_observers: list[SyncObserver]
    """Observers of every batch request's duration (metrics)."""
    control_lane: Lane
    """Where the bill desk parses imported CSV."""
    transport: httpx.AsyncBaseTransport | None = None
    """The HTTP transport (tests only)."""


@dataclass(frozen=True, slots=True)
class Parts:
    """One agent's parts, joined, none started."""

    sink: Sink
    movable: MovableSink | None
    """The sink when its service can move (Trace API v1), for ``sync.url`` reloads."""
    sync: SyncLoop
    desk: BillDesk
    committer: GroupCommitter
    intake: ScanIntake


def make_sink(cfg: AgentConfig, thread: OutboxThread, hooks: Hooks) -> Sink:
    """The sink for ``sync.protocol`` (:func:`scanner_agent.sinks.build_sink`).

    Raises:
        ConfigError: its credential cannot be read.
    """
    context = SinkContext(thread, hooks.token_reader(), hooks.transport, hooks.sync_observers)
    return build_sink(cfg, context)


async def compose(cfg: AgentConfig, thread: OutboxThread, hooks: Hooks, sink: Sink) -> Parts:
    """Join ``sink`` to a sync loop, then build the bill desk (started), the committer and
    the intake.

    Raises:
        ScannerAgentError: the outbox cannot be read.
    """
    if isinstance(sink, PlatformAlarms):
        await sink.load_alarms()
        for alarm in sink.alarms():
            log.error("ALARM: %s", alarm)
    names = sink_names(cfg)
    sync = SyncLoop(
        thread,
        sink,
        cfg.sync,
        token_reader=hooks.token_reader,
        platform=names.platform,
        credential=names.credential,
        credential_source=names.source,
    )
    committer = GroupCommitter(
        thread,
        max_rows=cfg.outbox.commit_max_rows,
        linger_s=cfg.outbox.commit_interval_ms / 1000.0,
        reject_duplicates=cfg.scan.reject_duplicates,
        on_commit=sync.wake,
    )
    desk = BillDesk(
        thread,
        device_id=cfg.device_id,
        on_close=sync.wake,
        # Every scan queued so far committed before a bill closes: none joins a closed bill.
        before_close=committer.flush,
        bill_problem=lambda number, bill: sink.admission.bill_problem(number, bill),
        parse_lane=hooks.control_lane,
    )
    await desk.start()

    def admit(bill: str) -> Gate:
        """What the sink takes onto ``bill`` (asked by the intake before each commit)."""
        return sink.admission.gate(bill, desk.opened(bill))

    intake = ScanIntake(
        committer,
        device_id=cfg.device_id,
        bill_for=hooks.bill_for,
        default_action=cfg.scan.action,
        listeners=hooks.listeners,
        admit=admit,
    )
    # The last refusal before this start, so `status` names it at once (the TUI's docks).
    intake.stats.last_refused = await thread.call(thread.outbox.last_reject)
    movable = sink if isinstance(sink, MovableSink) else None
    return Parts(sink, movable, sync, desk, committer, intake)


def bind_sources(
    cfg: AgentConfig, intake: ScanIntake, given: list[tuple[Source, str, str]] | None
) -> list[tuple[Source, BoundIntake]]:
    """Each source with the intake bound to its action and bill: ``given`` ``(source, action,
    bill)`` triples (the demo, tests), else the configured sources built by their drivers.

    Raises:
        ConfigError: a configured source cannot be built.
    """
    if given is not None:
        return [
            (src, BoundIntake(intake, action=action or cfg.scan.action, bill=bill))
            for src, action, bill in given
        ]
    return [
        (
            build_source(sc.type, sc.options, name=sc.name, where=f"source[{i}]"),
            BoundIntake(intake, action=sc.action or cfg.scan.action, bill=sc.bill),
        )
        for i, sc in enumerate(cfg.sources)
    ]
