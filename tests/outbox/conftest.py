"""Shared pieces of the outbox tests: a fresh outbox file and scans to put in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner_agent.outbox import NewScan, Outbox, uuid7

SCANNED_AT = "2026-11-23T10:00:00.000+00:00"


def new_scan(code: str, *, bill: str = "B1", action: str = "ship") -> NewScan:
    """A valid cn20 scan of ``code`` on ``bill``, as the intake would queue it."""
    return NewScan(uuid7(), code, "cn20", code, None, action, bill, "dock", "test", SCANNED_AT)


def cn20_scans(start: int, n: int, *, bill: str = "B1") -> list[NewScan]:
    """``n`` scans of distinct cn20 codes numbered from ``start``."""
    return [new_scan(f"8{i:019d}", bill=bill) for i in range(start, start + n)]


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox.open(tmp_path / "outbox.db")
    yield box
    box.close()
