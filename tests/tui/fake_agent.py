"""A fixed, in-memory agent for deterministic TUI snapshots (the real one is tested with Pilot)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from scanner_agent.control import RemoteError
from scanner_agent.times import iso

AT = "2026-11-23T08:30:0{}.000+00:00"
NOW = 1795422615.0  # 2026-11-23T08:30:15Z
"""The TUI's clock in the tests; every time in :data:`STATUS` is ISO 8601, as the agent sends it."""

EVENTS: list[dict[str, Any]] = [
    {
        "event": "scan",
        "at": AT.format(1),
        "code": "81234560000000011234",
        "scheme": "cn20",
        "product": "8123456",
        "name": "阿莫西林胶囊",
        "units": 1,
        "carton": False,
        "verdict": "accepted",
        "reason": None,
        "seq": 1,
        "source": "tcp:dock",
        "bill": "SO-2026-0001",
    },
    {
        "event": "scan",
        "at": AT.format(2),
        "code": "81234500000000011111",
        "scheme": "cn20",
        "product": "8123450",
        "name": "阿莫西林胶囊",
        "units": 10,
        "carton": True,
        "verdict": "accepted",
        "reason": None,
        "seq": 2,
        "source": "tcp:dock",
        "bill": "SO-2026-0001",
    },
    {
        "event": "scan",
        "at": AT.format(3),
        "code": "(01)06901234567892(21)A1B2C3",
        "scheme": "gs1",
        "product": "06901234567892",
        "name": "布洛芬缓释胶囊",
        "units": 1,
        "carton": False,
        "verdict": "accepted",
        "reason": None,
        "seq": 3,
        "source": "tcp:dock",
        "bill": "SO-2026-0001",
    },
    {
        "event": "scan",
        "at": AT.format(4),
        "code": "81234560000000011234",
        "scheme": "cn20",
        "product": "8123456",
        "name": "阿莫西林胶囊",
        "units": 1,
        "carton": False,
        "verdict": "duplicate",
        "reason": "duplicate scan",
        "seq": 1,
        "source": "tcp:dock",
        "bill": None,
    },
]

_REASONS = [
    ("duplicate", "duplicate scan"),
    ("invalid", "a product barcode, not a trace code"),
    ("invalid", "malformed gs1 code: ai (17): 0 characters, needs 6 digits"),
    ("invalid", "invalid GTIN check digit for '06900695828659': Expected 8, got 9"),
    ("invalid", "empty scan"),
    ("invalid", "unreadable scan: non-printable characters"),
    ("invalid", "not a trace code: 7-digit number"),
    ("invalid", "not a recognised trace code"),
    ("invalid", "drug trace code must be 20 digits, got 19"),
    ("invalid", "20 digits not starting with 8: not a drug trace code"),
    ("invalid", "too long: 5000 characters, at most 4690"),
    ("full", "outbox full"),
    ("invalid", "code not registered on the platform"),
    ("invalid", "refused by the sink"),
]
REFUSALS: list[dict[str, Any]] = [
    {
        "event": "scan",
        "at": AT.format(5),
        "code": "(01)06901234567892(17)271231(10)LOT-2026-11-A(21)SN000000123456789",
        "scheme": "gs1",
        "product": "06901234567892",
        "name": "复方氨酚烷胺胶囊(感康)",
        "units": 1,
        "carton": False,
        "verdict": verdict,
        "reason": reason,
        "seq": None,
        "source": "tcp:dock",
        "bill": None,
    }
    for verdict, reason in _REASONS
]
"""A refused scan for every reason the agent gives (one long GS1 code, a long Chinese name)."""

TOTALS = {
    "scans": 3,
    "cartons": 1,
    "units": 12,
    "removed": 1,
    "pending": 0,
    "held": 3,
    "in_flight": 0,
    "delivered": 0,
    "duplicate": 0,
    "rejected": 0,
}

BILL_VIEW: dict[str, Any] = {
    "bill": {
        "number": "SO-2026-0001",
        "type": 201,
        "type_zh": "销售出库",
        "type_en": "Sales shipment",
        "action": "ship",
        "device_id": "dock-1",
        "from_party": "华东仓",
        "to_party": "仁和药房",
        "note": "",
        "state": "open",
        "opened_at": AT.format(0),
        "closed_at": None,
        "totals": TOTALS,
    },
    "lines": [
        {
            "product": "8123456",
            "name": "阿莫西林胶囊",
            "expected": 20,
            "scanned": 11,
            "cartons": 1,
            "missing": 9,
            "extra": 0,
        },
        {
            "product": "06901234567892",
            "name": "布洛芬缓释胶囊",
            "expected": 0,
            "scanned": 1,
            "cartons": 0,
            "missing": 0,
            "extra": 1,
        },
    ],
    "scans": [
        {
            "seq": 4,
            "code": "81234560000000099999",
            "product": "8123456",
            "name": "阿莫西林胶囊",
            "units": 1,
            "carton": False,
            "scanned_at": AT.format(5),
            "state": "removed",
            "result": None,
            "reason": None,
            "removed": True,
        },
        {
            "seq": 3,
            "code": "(01)06901234567892(21)A1B2C3",
            "product": "06901234567892",
            "name": "布洛芬缓释胶囊",
            "units": 1,
            "carton": False,
            "scanned_at": AT.format(3),
            "state": "held",
            "result": None,
            "reason": None,
            "removed": False,
        },
        {
            "seq": 2,
            "code": "81234500000000011111",
            "product": "8123456",
            "name": "阿莫西林胶囊",
            "units": 10,
            "carton": True,
            "scanned_at": AT.format(2),
            "state": "held",
            "result": None,
            "reason": None,
            "removed": False,
        },
        {
            "seq": 1,
            "code": "81234560000000011234",
            "product": "8123456",
            "name": "阿莫西林胶囊",
            "units": 1,
            "carton": False,
            "scanned_at": AT.format(1),
            "state": "held",
            "result": None,
            "reason": None,
            "removed": False,
        },
    ],
    "removals": [
        {
            "seq": 4,
            "event_id": "e4",
            "bill": "SO-2026-0001",
            "code": "81234560000000099999",
            "reason": "wrong product",
            "origin": "tui",
            "removed_at": AT.format(6),
        }
    ],
    "has_expected": True,
}

STATUS: dict[str, Any] = {
    "device_id": "dock-1",
    "state": "running",
    "uptime_s": 3600.0,
    "link": "degraded",
    "last_error": "HTTP 503 from the trace service",
    "last_error_at": "2026-11-23T08:30:10.000+00:00",
    "last_error_current": True,
    "backlog": 42,
    "held": 3,
    "removed": 1,
    "queue": {
        "pending": 37,
        "held": 3,
        "in_flight": 2,
        "delivered": 1200,
        "rejected": 2,
        "removed": 1,
    },
    "oldest_pending_at": AT.format(0),
    "scanned": 4,
    "accepted": 3,
    "refused": {"duplicate scan": 1},
    "sources": ["tcp:dock", "serial:/dev/ttyACM0", "hidraw:/dev/hidraw3"],
    "devices": [
        {
            "source": "serial:/dev/ttyACM0",
            "connected": True,
            "device": "/dev/ttyACM0",
            "model": "Honeywell 1950g",
            "last_scan_at": iso(NOW - 3),
            "errors": 0,
            "reason": None,
        },
        {
            "source": "hidraw:/dev/hidraw3",
            "connected": False,
            "device": "/dev/hidraw3",
            "model": "Zebra DS2208",
            "last_scan_at": iso(NOW - 600),
            "errors": 2,
            "reason": "unplugged",
        },
    ],
    "last_scan_at": {"tcp:dock": iso(NOW - 12)},
    "bills": [
        {
            "number": "SO-2026-0001",
            "type": 201,
            "action": "ship",
            "state": "open",
            "opened_at": AT.format(0),
        }
    ],
    "control": {"socket": "/run/scanner-agent/control.sock", "serving": True, "error": None},
    "alarms": [],
    "sync": {
        "link": "degraded",
        "batches": 12,
        "delivered": 1200,
        "duplicate": 3,
        "rejected": 2,
        "failures": 1,
        "consecutive_failures": 1,
        "last_error": "HTTP 503 from the trace service",
        "last_error_at": "2026-11-23T08:30:10.000+00:00",
        "last_error_current": True,
        "last_success_at": iso(NOW - 30),
        "in_flight": 1,
        "retry_at": iso(NOW + 4),
        "batch_limit": 1000,
        "alarm": None,
        "recent_rejections": [
            {
                "at": iso(NOW - 100),
                "batch_id": "b1",
                "seq": 7,
                "event_id": "e7",
                "code": "81234560000000077777",
                "reason": "code not registered on the platform",
            }
        ],
    },
    "last_refusal": {
        "at": AT.format(4),
        "verdict": "duplicate",
        "code": "81234560000000011234",
        "reason": "duplicate scan",
        "source": "tcp:dock",
    },
}


class FakeStream:
    """Yields the fixed events, then waits until closed."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._events = events
        self._closed = threading.Event()
        self._error: Exception | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from self._events
        self._closed.wait()
        if self._error is not None:
            raise self._error

    def fail(self, error: Exception) -> None:
        """End the stream with ``error`` (the agent went away)."""
        self._error = error
        self._closed.set()

    def close(self) -> None:
        self._closed.set()


class FakeAgent:
    """Answers ``hello``, ``status`` and ``bill.show`` with the fixed data above."""

    def __init__(
        self,
        *,
        events: list[dict[str, Any]] | None = None,
        status: dict[str, Any] | None = None,
        errors: dict[str, Exception] | None = None,
        bill: dict[str, Any] | None = None,
    ) -> None:
        """``errors``: what a command raises (a lost reply, a refusal) instead of answering;
        ``bill``: the ``bill.show`` answer (default :data:`BILL_VIEW`)."""
        self.events_list = EVENTS if events is None else events
        self.status = STATUS if status is None else status
        self.errors = errors or {}
        self.bill = BILL_VIEW if bill is None else bill
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.streams: list[FakeStream] = []

    def call(self, cmd: str, /, **args: Any) -> Any:
        self.calls.append((cmd, args))
        if cmd in self.errors:
            raise self.errors[cmd]
        if cmd == "hello":
            return {"protocol": 1, "device_id": "dock-1"}
        if cmd == "status":
            return self.status
        if cmd == "bill.show":
            return self.bill
        raise RemoteError("unknown_command", cmd)

    def events(self) -> FakeStream:
        stream = FakeStream(self.events_list)
        self.streams.append(stream)
        return stream

    def close(self) -> None:
        for s in self.streams:
            s.close()
