"""The daemon core never loads the TUI toolkit (it runs on boxes with no terminal)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE_MODULES = [
    "scanner_agent.daemon",
    "scanner_agent.cli",
    "scanner_agent.codes",
    "scanner_agent.outbox",
    "scanner_agent.sync",
    "drivers.tcp",
    "drivers.replay",
    "drivers.serialport",
    "drivers.hidraw",
    "drivers.wedge",
    "drivers.discovery",
    "scanner_agent.cli_hw",
    "scanner_agent.bills",
    "scanner_agent.control",
    "scanner_agent.cli_bills",
]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_not_import_textual(module: str) -> None:
    # rich may appear: httpx loads its optional CLI (which uses rich) whenever rich is installed.
    code = f"import sys, {module}; bad = [m for m in sys.modules if m.split('.')[0] == 'textual']; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
