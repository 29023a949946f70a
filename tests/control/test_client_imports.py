"""The client side of the control interface (the CLI, the TUI) imports without the server:
no bill desk, no outbox, no code parser, no sync loop, no config and no daemon loaded by it.
Checked in a fresh interpreter, where ``sys.modules`` shows everything an import pulled in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

NOT_FOR_A_CLIENT = (
    "scanner_agent.control.server",
    "scanner_agent.bills",
    "scanner_agent.outbox",
    "scanner_agent.codes",
    "scanner_agent.sync",
    "scanner_agent.config",
    "scanner_agent.daemon",
)
"""Packages (and the server module) that only the daemon's side needs."""


def _loaded_after(statement: str) -> list[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(out.stdout)
    return loaded


@pytest.mark.parametrize(
    "statement",
    [
        "import scanner_agent.control",
        "from scanner_agent.control import ControlClient, EventStream, RemoteError",
    ],
)
def test_importing_the_client_loads_none_of_the_daemon_side(statement: str) -> None:
    loaded = _loaded_after(statement)
    assert "scanner_agent.control" in loaded
    heavy = [m for m in loaded if any(m == p or m.startswith(p + ".") for p in NOT_FOR_A_CLIENT)]
    assert heavy == []


def test_the_server_module_does_load_what_it_serves() -> None:
    """The check above can fail: the server, imported, brings the bill desk and the codes."""
    loaded = _loaded_after("import scanner_agent.control.server")
    assert {"scanner_agent.bills", "scanner_agent.codes"} <= set(loaded)
