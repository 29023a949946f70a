"""journald priorities: under systemd every stderr line carries ``<N>`` (sd-daemon(3)).

journald reads a ``<N>`` prefix at the start of each line of a service's
stderr as the syslog priority, so ``journalctl -p warning`` shows exactly the
warnings and errors.  The daemon knows stderr is the journal when
``JOURNAL_STREAM`` names stderr's device and inode (systemd.exec(5)); these
tests give it a file as stderr and that file's ``dev:ino``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner_agent.ops import logs
from tests.support.net import source_port
from tests.support.polling import wait_for

PRIORITY = re.compile(r"^<([0-7])>(.*)$")
LEVEL_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}


def _stream_of(path: Path) -> str:
    st_ = path.stat()
    return f"{st_.st_dev}:{st_.st_ino}"


def _write_config(path: Path, *, port: int, broken: bool = False) -> None:
    path.write_text(
        ("device_id = [broken\n" if broken else 'device_id = "journal-dock"\n')
        + f"""
log_level = "debug"
[outbox]
path = "{path.parent / "outbox.db"}"
min_free_mb = 0
[sync]
url = "http://127.0.0.1:9"
token_env = "JOURNAL_TEST_TOKEN"
idle_poll_s = 0.05
backoff_initial_s = 0.05
backoff_max_s = 0.2
[[source]]
type = "tcp"
listen = "127.0.0.1:{port}"
ack = true
"""
    )


def test_the_daemon_prefixes_every_stderr_line_with_its_priority_under_the_journal(
    tmp_path: Path,
) -> None:
    """A real daemon: info at start, warnings (the link is down), an error (a refused reload)."""
    config = tmp_path / "agent.toml"
    _write_config(config, port=0)  # the port it binds is read from its log: none to race for
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("wb") as stderr:
        env = {
            **os.environ,
            "JOURNAL_STREAM": _stream_of(stderr_path),
            "JOURNAL_TEST_TOKEN": "journal-token-1234",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "scanner_agent", "run", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
        try:
            port = source_port(stderr_path, proc)

            # Something was scanned, so the sync loop has a batch to fail to send.
            def scanned() -> bool:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                        sock.sendall(b"81234560000000011234\r\n")
                        return sock.recv(100).startswith(b"ACK")
                except OSError:
                    return False

            wait_for(scanned, within=30.0, what="the daemon to accept a scan")
            wait_for(
                lambda: b'"warning"' in stderr_path.read_bytes(), within=30.0, what="a warning"
            )
            _write_config(config, port=port, broken=True)
            proc.send_signal(signal.SIGHUP)
            wait_for(
                lambda: b"keeping the running config" in stderr_path.read_bytes(),
                within=30.0,
                what="error",
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    lines = stderr_path.read_text().splitlines()
    seen: set[int] = set()
    for line in lines:
        match = PRIORITY.match(line)
        assert match, f"no priority prefix: {line!r}"
        record = json.loads(match.group(2))
        assert int(match.group(1)) == LEVEL_PRIORITY[record["level"]], line
        seen.add(int(match.group(1)))
    assert {7, 6, 4, 3} <= seen, seen


def test_no_prefix_when_journal_stream_names_another_file(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_text("")
    stderr_path = tmp_path / "stderr"
    code = (
        "import logging; from scanner_agent.ops.logs import setup_logging; "
        "setup_logging('info'); logging.getLogger('x').warning('hello')"
    )
    with stderr_path.open("wb") as stderr:
        subprocess.run(
            [sys.executable, "-c", code],
            stderr=stderr,
            env={**os.environ, "JOURNAL_STREAM": _stream_of(other)},
            check=True,
            timeout=60,
        )
    (line,) = stderr_path.read_text().splitlines()
    assert json.loads(line)["msg"] == "hello"


def test_a_cli_error_under_the_journal_is_an_error_line(tmp_path: Path) -> None:
    stderr_path = tmp_path / "stderr"
    with stderr_path.open("wb") as stderr:
        done = subprocess.run(
            [sys.executable, "-m", "scanner_agent", "run", "-c", str(tmp_path / "missing.toml")],
            stderr=stderr,
            env={**os.environ, "JOURNAL_STREAM": _stream_of(stderr_path)},
            timeout=60,
        )
    assert done.returncode == 2
    lines = stderr_path.read_text().splitlines()
    assert lines
    assert lines[0].startswith("<3>scanner-agent: error: "), lines
    assert all(line.startswith("<3>scanner-agent: ") for line in lines), lines


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", False), ("junk", False), ("1:", False), (":2", False), ("1:2:3", False)],
)
def test_a_journal_stream_that_is_not_dev_colon_ino_is_not_the_journal(
    value: str, expected: bool
) -> None:
    assert logs.stderr_is_journal({"JOURNAL_STREAM": value}) is expected


@given(
    message=st.text(),
    level=st.sampled_from(
        [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL, 25, 35]
    ),
    json_lines=st.booleans(),
)
def test_every_line_of_any_record_carries_the_records_priority(
    message: str, level: int, json_lines: bool
) -> None:
    inner = logs.JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(message)s")
    formatter = logs.PriorityFormatter(inner)
    record = logging.LogRecord("x", level, __file__, 1, "%s", (message,), None)
    text = formatter.format(record)
    want = f"<{logs.syslog_priority(level)}>"
    # journald ends a line at LF and at NUL; each piece must start with the prefix.
    for line in re.split("[\n\0]", text):
        assert line.startswith(want), (text, line)


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, 7),
        (5, 7),
        (logging.INFO, 6),
        (25, 6),
        (logging.WARNING, 4),
        (35, 4),
        (logging.ERROR, 3),
        (logging.CRITICAL, 2),
        (60, 2),
    ],
)
def test_levels_between_the_named_ones_take_the_priority_below(level: int, priority: int) -> None:
    assert logs.syslog_priority(level) == priority
