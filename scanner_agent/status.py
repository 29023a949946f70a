"""The agent's status as one typed value, and its one JSON form.

Every field has a default, so a reply from an older agent that lacks a key
still reads (and keys a newer agent adds are ignored), as the protocol promises.

The daemon builds an :class:`AgentStatus` in one place
(:func:`scanner_agent.daemon.Daemon.agent_status`); the control server sends it
as :meth:`AgentStatus.to_json`; the CLI and the TUI read a ``status`` reply
back with :meth:`AgentStatus.from_json`; metrics, ``/health``, ``/ready`` and
the systemd status line read the value itself.  No consumer picks a status
apart by string keys.  The sync loop returns its part, a :class:`SyncStatus`, itself
(:meth:`scanner_agent.sync.SyncLoop.snapshot`), so that state is defined here once.

It sits at the bottom of the layers (standard library and :mod:`scanner_agent.times`
only), so the parts that produce a status (the sync loop, the daemon) and the clients
that read one (control's client side, the CLI, the TUI) all import it without loading
each other; :mod:`scanner_agent.control` re-exports every name.

Every time is ISO 8601 with an offset, as the agent reports times everywhere
(control protocol version 2).  A client that asks for version 1 gets five of
them as Unix times (seconds, a float), as version 1 gave them:
``last_scan_at`` (per source), ``devices[].last_scan_at``,
``sync.last_success_at``, ``sync.retry_at`` and ``sync.recent_rejections[].at``
(:meth:`AgentStatus.to_json` with ``version=1``).  Nothing else differs.

>>> st = AgentStatus.from_json({"device_id": "dock-1", "state": "running", "backlog": 3})
>>> (st.device_id, st.backlog, st.link, st.sync is None)
('dock-1', 3, 'unknown', True)
>>> AgentStatus.from_json(st.to_json()) == st
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scanner_agent.times import parse_time

__all__ = [
    "AgentStatus",
    "ControlStatus",
    "DeviceReport",
    "OpenBill",
    "RefusalReport",
    "RejectionReport",
    "SyncStatus",
    "TcpReport",
]


def _unix(at: Any) -> float | None:
    moment = parse_time(at) if isinstance(at, str) else None
    return None if moment is None else moment.timestamp()


def _fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``data`` that are fields of ``cls`` (a newer agent may send more)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True, slots=True)
class RejectionReport:
    """A scan the service refused, kept for the operator."""

    at: str | None = None
    """When the verdict came."""
    batch_id: str = ""
    seq: int = 0
    event_id: str = ""
    code: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RefusalReport:
    """The last scan the agent refused at intake (``last_refusal``): what a clerk coming to a
    dock wants to see first, whether it happened a second or an hour before they looked."""

    at: str | None = None
    """When it was scanned."""
    verdict: str = ""
    """``invalid``, ``duplicate``, ``full`` or ``error``."""
    code: str = ""
    """The code as shown; empty when only its kind is known (after a restart, read back from
    an aggregate of several refusals whose last code was not kept)."""
    reason: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """The sync loop's link state and counters since start (``sync`` in the JSON form)."""

    link: str = "unknown"
    batches: int = 0
    delivered: int = 0
    duplicate: int = 0
    rejected: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: str | None = None
    last_error_current: bool = False
    """Whether ``last_error`` still holds (false once a later batch was delivered)."""
    last_success_at: str | None = None
    in_flight: int = 0
    """Batches awaiting the service right now."""
    retry_at: str | None = None
    """While backing off: when the next attempt is due."""
    batch_limit: int = 0
    alarm: str | None = None
    recent_rejections: tuple[RejectionReport, ...] = ()
    """The latest refused scans, oldest first."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SyncStatus:
        """Read the JSON form (the sync loop's snapshot)."""
        values = _fields(cls, data)
        values["recent_rejections"] = tuple(
            RejectionReport(**_fields(RejectionReport, r))
            for r in data.get("recent_rejections") or ()
        )
        return cls(**values)

    def to_json(self, version: int) -> dict[str, Any]:
        """The JSON form in control protocol ``version``."""
        out = dataclasses.asdict(self)
        out["recent_rejections"] = [dataclasses.asdict(r) for r in self.recent_rejections]
        if version == 1:
            out["last_success_at"] = _unix(self.last_success_at)
            out["retry_at"] = _unix(self.retry_at)
            for r in out["recent_rejections"]:
                r["at"] = _unix(r["at"])
        return out


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """One hardware source's device (:class:`scanner_agent.kernel.DeviceStatus`, times as ISO)."""

    source: str = ""
    connected: bool = False
    device: str = ""
    model: str | None = None
    last_scan_at: str | None = None
    errors: int = 0
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class TcpReport:
    """One TCP source's bounds at work (``drivers.tcp.TcpSource.counters``)."""

    source: str = ""
    listen: str = ""
    clients: int = 0
    """Connections open now."""
    counters: Mapping[str, int] = field(default_factory=dict)
    """Every ``TcpStats`` field: ``connections``, ``refused``, ``evicted``, ``idle_closed``,
    ``read_timeouts``, ``write_timeouts``, ``slowed``, frames and bytes in flight..."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TcpReport:
        """Read the JSON form: the three named keys, the rest are counters."""
        rest = {k: v for k, v in data.items() if k not in ("source", "listen", "clients")}
        return cls(
            str(data.get("source", "")),
            str(data.get("listen", "")),
            int(data.get("clients", 0)),
            rest,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form: one flat object."""
        return {
            "source": self.source,
            "listen": self.listen,
            "clients": self.clients,
            **self.counters,
        }


@dataclass(frozen=True, slots=True)
class OpenBill:
    """A bill open on this device."""

    number: str = ""
    type: int | None = None
    action: str = ""
    state: str = ""
    opened_at: str | None = None


@dataclass(frozen=True, slots=True)
class ControlStatus:
    """The control interface: where it listens, whether it does, what its bounds did."""

    socket: str = ""
    serving: bool = False
    error: str | None = None
    """Why it is off (it never stops scanning)."""
    clients: int = 0
    refused: int = 0
    """Connections refused because ``control.max_clients`` were connected."""
    dropped: int = 0
    """Clients disconnected for leaving more than ``control.max_backlog_bytes`` unsent."""
    answered: int = 0


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """A snapshot of one running agent (the ``status`` command's result)."""

    device_id: str = ""
    state: str = "unknown"
    """The daemon's lifecycle state: ``new``, ``starting``, ``running``, ``stopping``..."""
    uptime_s: float = 0
    link: str = "unknown"
    """The sync link: ``online``, ``degraded``, ``offline``, ``auth_failed``, ``disabled``..."""
    last_error: str | None = None
    """The last send error, kept on record; ``last_error_current`` says whether it holds."""
    last_error_at: str | None = None
    last_error_current: bool = False
    backlog: int = 0
    """Rows still owed to the service (pending, held or in flight)."""
    held: int = 0
    removed: int = 0
    queue: Mapping[str, int] = field(default_factory=dict)
    """Outbox rows per row state."""
    oldest_pending_at: str | None = None
    scanned: int = 0
    accepted: int = 0
    refused: Mapping[str, int] = field(default_factory=dict)
    """Refusals since start by reason."""
    refusals_dropped: int = 0
    """Refusals counted but not written: free space was below twice the reserve."""
    sources: tuple[str, ...] = ()
    devices: tuple[DeviceReport, ...] = ()
    tcp: tuple[TcpReport, ...] = ()
    last_scan_at: Mapping[str, str | None] = field(default_factory=dict)
    """Per source, its last scan."""
    bills: tuple[OpenBill, ...] = ()
    control: ControlStatus = field(default_factory=ControlStatus)
    alarms: tuple[str, ...] = ()
    """Problems that need a person."""
    sync: SyncStatus | None = None
    last_refusal: RefusalReport | None = None
    """The last scan refused at intake, kept across restarts; None if none is on record
    (or the agent is older than this field)."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AgentStatus:
        """Read a ``status`` result (protocol version 2); keys it lacks get their defaults."""
        values = _fields(cls, data)
        values["queue"] = dict(data.get("queue") or {})
        values["refused"] = dict(data.get("refused") or {})
        values["sources"] = tuple(data.get("sources") or ())
        values["devices"] = tuple(
            DeviceReport(**_fields(DeviceReport, d)) for d in data.get("devices") or ()
        )
        values["tcp"] = tuple(TcpReport.from_json(t) for t in data.get("tcp") or ())
        values["last_scan_at"] = dict(data.get("last_scan_at") or {})
        values["bills"] = tuple(OpenBill(**_fields(OpenBill, b)) for b in data.get("bills") or ())
        values["control"] = ControlStatus(**_fields(ControlStatus, data.get("control") or {}))
        values["alarms"] = tuple(data.get("alarms") or ())
        sync = data.get("sync")
        values["sync"] = SyncStatus.from_json(sync) if sync else None
        refusal = data.get("last_refusal")
        values["last_refusal"] = (
            RefusalReport(**_fields(RefusalReport, refusal)) if refusal else None
        )
        return cls(**values)

    def to_json(self, version: int = 2) -> dict[str, Any]:
        """The JSON form, the one the ``status`` command sends, in control protocol ``version``
        (2, or 1 for a client that still asks for it: see the module docstring)."""
        unix = version == 1
        return {
            "device_id": self.device_id,
            "state": self.state,
            "uptime_s": self.uptime_s,
            "link": self.link,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_error_current": self.last_error_current,
            "backlog": self.backlog,
            "held": self.held,
            "removed": self.removed,
            "queue": dict(self.queue),
            "oldest_pending_at": self.oldest_pending_at,
            "scanned": self.scanned,
            "accepted": self.accepted,
            "refused": dict(self.refused),
            "refusals_dropped": self.refusals_dropped,
            "sources": list(self.sources),
            "devices": [
                {
                    **dataclasses.asdict(d),
                    **({"last_scan_at": _unix(d.last_scan_at)} if unix else {}),
                }
                for d in self.devices
            ],
            "tcp": [t.to_json() for t in self.tcp],
            "last_scan_at": {k: (_unix(v) if unix else v) for k, v in self.last_scan_at.items()},
            "bills": [dataclasses.asdict(b) for b in self.bills],
            "control": dataclasses.asdict(self.control),
            "alarms": list(self.alarms),
            "sync": None if self.sync is None else self.sync.to_json(version),
            # New in protocol 2 without a version 1 form: its time stays ISO in both.
            "last_refusal": (
                None if self.last_refusal is None else dataclasses.asdict(self.last_refusal)
            ),
        }
