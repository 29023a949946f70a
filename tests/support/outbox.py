"""Scans to put in an outbox."""

from __future__ import annotations

from scanner_agent.outbox import NewScan, uuid7

SCANNED_AT = "2026-11-23T10:00:00.000+00:00"


def new_scan(code: str, *, bill: str = "B1", action: str = "ship") -> NewScan:
    """A valid cn20 scan of ``code`` on ``bill``, as the intake would queue it."""
    return NewScan(uuid7(), code, "cn20", code, None, action, bill, "dock", "test", SCANNED_AT)


def cn20_scans(start: int, n: int, *, bill: str = "B1") -> list[NewScan]:
    """``n`` scans of distinct cn20 codes numbered from ``start``."""
    return [new_scan(f"8{i:019d}", bill=bill) for i in range(start, start + n)]
