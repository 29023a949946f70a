"""``trace-server`` on an address already taken: one line naming it, like ``run``."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from scanner_agent.cli.output import EXIT_FAILED


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_a_busy_port_is_one_error_line_naming_the_address(tmp_path: Path, host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        taken = socket.socket(family)
        taken.bind((host, 0))
    except OSError as exc:
        pytest.skip(f"no {host} here: {exc}")
    with taken:
        taken.listen()
        port = taken.getsockname()[1]
        listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "scanner_agent",
                "trace-server",
                "--db",
                str(tmp_path / "trace.db"),
                "--token-env",
                "BUSY_PORT_TOKEN",
                "--listen",
                listen,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "BUSY_PORT_TOKEN": "busy-port-token"},
        )
    assert done.returncode == EXIT_FAILED, done.stderr  # as `run` on a busy port
    assert done.stderr.splitlines() == [
        f"scanner-agent: error: Failed to listen on {listen}: {os.strerror(errno.EADDRINUSE)}"
    ], done.stderr
    assert "Traceback" not in done.stderr
