"""A token that is not one clean line is refused everywhere, and never shown (issue 16 item 7).

A multi-line token is planted and every output an operator or a log shipper
sees is scanned for every fragment of it: ``check-config`` (text and JSON),
``run``, ``doctor`` (text and JSON), a running daemon's log across SIGHUP
reloads, ``status`` (text and JSON) over the control socket.  Before the fix
the second line went to the log eight times (``Illegal header value``),
``doctor`` printed the whole token, a non-ASCII token crashed ``run`` and the
reload task, and an empty token was taken on reload.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from scanner_agent.traceserver import TraceServerThread
from tests.support.agent import TOKEN
from tests.support.net import source_port
from tests.support.polling import wait_for

AGENT = [sys.executable, "-m", "scanner_agent"]
FRAGMENTS = ("PART1-q7Xv2kHs", "PART2-m9Lw4zJd", "PART3-c5Rt8yPe")
PLANTED = "\n".join(FRAGMENTS) + "\n"
NON_ASCII = ("NBSP-a8Kd3sWq", "tail-9QwZx7Lm")
"""A token with a no-break space (U+00A0) between its halves."""
EVERY_FRAGMENT = (*FRAGMENTS, *NON_ASCII)


def assert_clean(*texts: str) -> None:
    for text in texts:
        for fragment in EVERY_FRAGMENT:
            assert fragment not in text, f"{fragment!r} leaked: ...{text[-600:]}"


def _write_config(
    path: Path, *, url: str, token: str, port: int | None = None, socket_path: str = ""
) -> Path:
    source = (
        f'[[source]]\ntype = "tcp"\nlisten = "127.0.0.1:{port}"\nack = true\n'
        if port is not None
        else ""
    )
    path.write_text(
        f"""
device_id = "secret-dock"
log_level = "debug"
[outbox]
path = "{path.parent / "data" / "outbox.db"}"
min_free_mb = 0
[sync]
url = "{url}"
{token}
idle_poll_s = 0.05
backoff_initial_s = 0.02
backoff_max_s = 0.2
[control]
socket = "{socket_path}"
{source}"""
    )
    return path


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENT, *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


@pytest.fixture
def service(tmp_path: Path) -> object:
    with TraceServerThread(tmp_path / "service.db", TOKEN) as server:
        yield server


BAD_TOKENS = {
    "multi-line": (PLANTED, "3 lines"),
    "non-ASCII": (f"{NON_ASCII[0]}\u00a0{NON_ASCII[1]}\n", "not printable ASCII"),
}
"""Each bad token and the words of its refusal (a non-ASCII one crashed ``run`` and ``doctor``)."""


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
@pytest.mark.parametrize("via", ["file", "environment"])
def test_a_bad_token_is_refused_by_every_command_without_showing_it(
    tmp_path: Path, service: TraceServerThread, via: str, kind: str
) -> None:
    planted, words = BAD_TOKENS[kind]
    env = dict(os.environ)
    if via == "file":
        token = tmp_path / "token"
        token.write_text(planted)
        token.chmod(0o600)
        line, key = f'token_file = "{token}"', "sync.token_file"
    else:
        env["SECRET_TEST_TOKEN"] = planted
        line, key = 'token_env = "SECRET_TEST_TOKEN"', "sync.token_env"
    config = _write_config(tmp_path / "agent.toml", url=service.url, token=line)

    check = _cli("check-config", "-c", str(config), env=env)
    check_json = _cli("check-config", "-c", str(config), "--json", env=env)
    run = _cli("run", "-c", str(config), env=env)
    doctor = _cli("doctor", "-c", str(config), env=env)
    doctor_json = _cli("doctor", "-c", str(config), "--json", env=env)

    for done in (check, check_json, run):
        assert done.returncode == 2, done
        assert f"{key}: " in done.stderr
        assert words in done.stderr
    assert doctor.returncode == doctor_json.returncode == 3  # ran, and a check failed
    report = json.loads(doctor_json.stdout)
    (token_check,) = [c for c in report["checks"] if c["name"] == "token"]
    assert token_check["status"] == "fail"
    assert "one line of printable ASCII" in token_check["hint"]
    assert not (tmp_path / "data").exists(), "run touched the outbox"
    every = (check, check_json, run, doctor, doctor_json)
    assert_clean(*(d.stdout + d.stderr for d in every))
    assert all("Traceback" not in d.stderr for d in every)


def test_a_running_daemon_refuses_bad_tokens_on_reload_and_keeps_syncing(
    tmp_path: Path, service: TraceServerThread
) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    sock = str(tmp_path / "control.sock")
    config = _write_config(
        tmp_path / "agent.toml",
        url=service.url,
        token=f'token_file = "{token}"',
        port=0,  # the port it binds is read from its log: none picked in advance to race for
        socket_path=sock,
    )
    log = tmp_path / "daemon.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [*AGENT, "run", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        port = source_port(log, proc)

        def reload(content: bytes, expect: str) -> None:
            before = log.read_text().count("reload: ")
            token.write_bytes(content)
            proc.send_signal(signal.SIGHUP)
            wait_for(
                lambda: log.read_text().count("reload: ") > before, within=60, what="the reload"
            )
            assert expect in log.read_text().split("reload: ", before + 1)[-1], log.read_text()

        reload(PLANTED.encode(), "holds 3 lines")
        reload(f"{NON_ASCII[0]}\u00a0{NON_ASCII[1]}\n".encode(), "not printable ASCII")
        reload(b"", "is empty")
        reload(b"\n", "is empty")

        # The running token still works: a scan is ACKed and delivered.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as scanner:
            scanner.sendall(b"81234561442725099325\r\n")
            assert scanner.makefile("rb").readline().startswith(b"ACK ")
        wait_for(lambda: service.store.events_after(0, 10)[0], within=60, what="the delivery")

        status = _cli("status", "-c", str(config))
        status_json = _cli("status", "-c", str(config), "--json")
        assert status.returncode == status_json.returncode == 0, status.stderr
        assert json.loads(status_json.stdout)["state"] == "running"

        # The reload task outlived every refusal: a good token is taken again.
        token.write_text(TOKEN + "\n")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload: applied" in log.read_text(), within=60, what="a good reload")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert text.count("keeping the running config") == 4, text
    assert "Traceback" not in text
    assert_clean(text, status.stdout, status.stderr, status_json.stdout)
