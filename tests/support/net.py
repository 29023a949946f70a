"""Loopback ports for servers started by a test."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path
from typing import Any

from tests.support.polling import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


_LISTENING = re.compile(r"listening on (https?://[^\s,\"]+)")


def served_url(log: Path, proc: subprocess.Popen[Any], within: float = 60.0) -> str:
    """The URL ``trace-server --listen HOST:0`` says it listens on, read from its ``log``.

    A port chosen before the server starts can be taken by another process in between, and
    a health check would then reach that one; the server's own line names the socket it
    bound, so the answer comes from this process or the test fails.  Fails if ``proc``
    exits first, with its log; a process that never says it is stopped, not left running.
    """

    def said() -> str | None:
        found = _LISTENING.search(log.read_text(errors="replace"))
        if found is None:
            assert proc.poll() is None, log.read_text(errors="replace")
            return None
        return found.group(1)

    try:
        return str(wait_for(said, within, "trace-server to say where it listens"))
    except BaseException:
        proc.kill()
        proc.wait()
        raise


_SOURCE_LISTENING = re.compile(rb": listening on 127\.0\.0\.1:(\d+)")


def source_port(log: Path, proc: subprocess.Popen[Any], within: float = 60.0) -> int:
    """The port a ``run`` daemon's TCP source (``listen = "127.0.0.1:0"``) says it bound.

    As :func:`served_url`: a port picked in advance can be taken before the daemon binds
    it, and a scan would then go to another process.  Needs ``log_level`` info or lower.
    """

    def said() -> int | None:
        found = _SOURCE_LISTENING.search(log.read_bytes())
        if found is None:
            assert proc.poll() is None, log.read_text(errors="replace")
            return None
        return int(found.group(1))

    try:
        return int(wait_for(said, within, "the daemon's TCP source to say its port"))
    except BaseException:
        proc.kill()
        proc.wait()
        raise
