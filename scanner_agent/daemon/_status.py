"""The one place an :class:`~scanner_agent.control.AgentStatus` is built from the running parts."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

from scanner_agent.bills import BillDesk
from scanner_agent.control import (
    AgentStatus,
    ControlStatus,
    DeviceReport,
    OpenBill,
    RefusalReport,
    TcpReport,
)
from scanner_agent.intake import ScanIntake
from scanner_agent.kernel import DeviceStatus, Source
from scanner_agent.outbox import Outbox, QueueStats, RejectRecord
from scanner_agent.sync import PlatformAlarms, Sink, SyncLoop
from scanner_agent.times import iso


@dataclasses.dataclass(frozen=True, slots=True)
class Parts:
    """What a status reads: the daemon's parts as they are now (None before they exist)."""

    device_id: str
    state: str
    started_at: float | None
    sources: Sequence[Source]
    last_scan_at: Mapping[str, float]
    outbox: Outbox | None
    intake: ScanIntake | None
    sync: SyncLoop | None
    sink: Sink | None
    desk: BillDesk | None
    control: ControlStatus


def build_status(parts: Parts, stats: QueueStats) -> AgentStatus:
    """The status of ``parts`` with the outbox counts ``stats``."""
    counts = parts.intake.stats if parts.intake else None
    sync = parts.sync.snapshot() if parts.sync else None
    return AgentStatus(
        device_id=parts.device_id,
        state=parts.state,
        uptime_s=round(time.time() - parts.started_at, 1) if parts.started_at else 0,
        link=parts.sync.state.value if parts.sync else "unknown",
        last_error=sync.last_error if sync else None,
        last_error_at=sync.last_error_at if sync else None,
        last_error_current=sync.last_error_current if sync else False,
        backlog=stats.backlog,
        held=stats.held,
        removed=stats.removed,
        queue=dict(stats.counts),
        oldest_pending_at=stats.oldest_pending_at,
        scanned=counts.scanned if counts else 0,
        accepted=counts.accepted if counts else 0,
        refused=dict(counts.refused) if counts else {},
        refusals_dropped=parts.outbox.refusals_dropped if parts.outbox else 0,
        sources=tuple(s.name for s in parts.sources),
        devices=tuple(d for d in map(device_report, parts.sources) if d is not None),
        tcp=tuple(t for t in map(tcp_report, parts.sources) if t is not None),
        last_scan_at={name: iso(at) for name, at in parts.last_scan_at.items()},
        bills=tuple(
            OpenBill(b.number, b.type, b.action, b.state, b.opened_at)
            for b in (parts.desk.open_bills if parts.desk else [])
        ),
        control=parts.control,
        alarms=tuple(_alarms(parts)),
        sync=sync,
        last_refusal=refusal_report(counts.last_refused) if counts else None,
    )


def refusal_report(record: RejectRecord | None) -> RefusalReport | None:
    """The intake's last refusal as ``status`` reports it.

    Read back from disk it is an aggregate: its reason's kind and last time are the last
    refusal's, its code only when the aggregate is of one code (a duplicate's, or a count
    of one); otherwise the code is left empty rather than show another scan's.
    """
    if record is None:
        return None
    exact = record.count == 1 or record.verdict == "duplicate"
    return RefusalReport(
        at=record.last_at or record.scanned_at,
        verdict=record.verdict,
        code=record.code if exact else "",
        reason=record.reason,
        source=record.source,
    )


def _alarms(parts: Parts) -> list[str]:
    intake, sync, sink = parts.intake, parts.sync, parts.sink
    return [
        *(parts.outbox.alarms if parts.outbox else []),
        *([intake.full_alarm] if intake and intake.full_alarm else []),
        *([sync.stats.alarm] if sync and sync.stats.alarm else []),
        *(sink.alarms() if isinstance(sink, PlatformAlarms) else []),
    ]


def tcp_report(source: Source) -> TcpReport | None:
    """A source's counters (a TCP source's :meth:`drivers.tcp.TcpSource.counters`), if any."""
    counters = getattr(source, "counters", None)
    if not callable(counters):
        return None
    value: dict[str, Any] = counters()
    return TcpReport.from_json(value)


def device_report(source: Source) -> DeviceReport | None:
    """A hardware source's device (its :class:`~scanner_agent.kernel.DeviceStatus`), if any."""
    status = getattr(source, "status", None)
    if not callable(status):
        return None
    snapshot = status()
    if not isinstance(snapshot, DeviceStatus):
        return None
    # A driver keeps time.time(); reports give ISO 8601.
    return DeviceReport(
        **{**dataclasses.asdict(snapshot), "last_scan_at": iso(snapshot.last_scan_at)}
    )
