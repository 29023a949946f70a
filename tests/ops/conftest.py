"""Fixtures for the operations tests: system tools (skipped with a reason when absent)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.systemd import SYSTEMD_DIR, tool

UNIT = SYSTEMD_DIR / "scanner-agent.service"
VENV_SCRIPT = Path(sys.executable).parent / "scanner-agent"
"""The console script of the venv running the tests (the unit's ExecStart in tests)."""


@pytest.fixture
def systemd_analyze() -> str:
    return tool("systemd-analyze")


@pytest.fixture
def test_unit(tmp_path: Path) -> Path:
    """A copy of the unit with ExecStart pointed at this venv's scanner-agent."""
    text = UNIT.read_text().replace("/opt/scanner-agent/venv/bin/scanner-agent", str(VENV_SCRIPT))
    assert str(VENV_SCRIPT) in text
    path = tmp_path / "unit" / "scanner-agent.service"
    path.parent.mkdir()
    path.write_text(text)
    return path
