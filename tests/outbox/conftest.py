"""Shared pieces of the outbox tests: a fresh outbox file and scans to put in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner_agent.outbox import Outbox


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox.open(tmp_path / "outbox.db")
    yield box
    box.close()
