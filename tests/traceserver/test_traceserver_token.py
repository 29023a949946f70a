"""The trace service's token: exactly compared, and never on a command line (issue 16 item 7).

The comparison used ``str.strip()`` on the presented credentials, which also
strips a no-break space (U+00A0) and other Unicode white space, so
``Bearer <token>\\xa0`` was let in.  ``--token TOKEN`` showed the token in
every local user's ``ps``: the service now reads it from ``--token-file`` or
``--token-env``, and the old flag works with a warning.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner_agent.traceserver import TraceServerThread
from tests.support.net import served_url

TOKEN = "trace-t0ken-5Yq"
AGENT = [sys.executable, "-m", "scanner_agent"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TraceServerThread]:
    with TraceServerThread(tmp_path_factory.mktemp("token") / "trace.db", TOKEN) as s:
        yield s


def _status(server: TraceServerThread, authorization: bytes) -> int:
    """The status of ``GET /v1/events`` with these raw header bytes (a socket, not httpx,
    which refuses to send some of them: a client that does not care can)."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"GET /v1/events?limit=1 HTTP/1.1\r\nHost: trace\r\nAuthorization: "
            + authorization
            + b"\r\nConnection: close\r\n\r\n"
        )
        head = sock.makefile("rb").readline()
    return int(head.split()[1])


@pytest.mark.parametrize(
    "value",
    [
        b"Bearer " + TOKEN.encode() + b"\xa0",
        b"Bearer \xa0" + TOKEN.encode(),
        b"Bearer " + TOKEN.encode() + b"\x85",  # NEL: white space to str.strip()
        b"Bearer " + TOKEN.encode() + b"\x0b",  # vertical tab
        b"Bearer " + TOKEN.encode()[:-1],
        b"Bearer " + TOKEN.encode() + b"x",
        b"Bearer " + TOKEN.upper().encode(),
        b"Basic " + TOKEN.encode(),
        TOKEN.encode(),
    ],
)
def test_anything_but_the_exact_token_is_refused(server: TraceServerThread, value: bytes) -> None:
    assert _status(server, value) in (400, 401)  # 400: a header value HTTP does not allow


def test_the_exact_token_is_accepted_with_any_case_of_the_scheme(
    server: TraceServerThread,
) -> None:
    for scheme in (b"Bearer", b"bearer", b"BEARER"):
        assert _status(server, scheme + b" " + TOKEN.encode()) == 200


_LATIN1 = st.binary(min_size=1, max_size=4).filter(
    lambda b: b.strip(b" \t") == b and b"\r" not in b and b"\n" not in b and b"\x00" not in b
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.binary(max_size=3), suffix=_LATIN1)
def test_a_token_with_anything_added_is_refused(
    server: TraceServerThread, prefix: bytes, suffix: bytes
) -> None:
    presented = prefix.lstrip(b" \t") + TOKEN.encode() + suffix
    if b"\r" in presented or b"\n" in presented or b"\x00" in presented:
        return  # not a header value a client can send
    assert _status(server, b"Bearer " + presented) in (400, 401)


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Start ``trace-server`` with ``args``; the status of an authorized read and its stderr.

    It listens on port 0 and the test reads the port it bound from its own log line: a port
    picked in advance could be taken in between, and the read would reach another server."""
    log = tmp_path / f"server-{len(list(tmp_path.glob('server-*.log')))}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                *AGENT,
                "trace-server",
                "--listen",
                "127.0.0.1:0",
                "--db",
                str(tmp_path / "t.db"),
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
    try:
        url = served_url(log, proc)
        assert httpx.get(url + "/v1/health").status_code == 200
        status = httpx.get(
            url + "/v1/events", headers={"Authorization": f"Bearer {TOKEN}"}
        ).status_code
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    return status, log.read_text()


def test_the_token_comes_from_a_file_or_a_variable_and_never_shows(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    status, err = _serve(tmp_path, "--token-file", str(token))
    assert status == 200
    assert TOKEN not in err
    assert "warning" not in err.lower()
    env = {**os.environ, "TRACE_TEST_TOKEN": TOKEN}
    status, err = _serve(tmp_path, "--token-env", "TRACE_TEST_TOKEN", env=env)
    assert status == 200
    assert TOKEN not in err


def test_the_token_flag_still_works_but_warns(tmp_path: Path) -> None:
    status, err = _serve(tmp_path, "--token", TOKEN)
    assert status == 200
    assert "--token shows the token to every local user" in err
    assert TOKEN not in err


@pytest.mark.parametrize(
    ("content", "mode", "words"),
    [
        ("PART1\nPART2\n", 0o600, "holds 2 lines"),
        ("tok en\u00a0x\n", 0o600, "not printable ASCII"),
        (TOKEN, 0o644, "readable by every user"),
        ("", 0o600, "is empty"),
    ],
)
def test_a_bad_token_file_is_refused_by_the_service_too(
    tmp_path: Path, content: str, mode: int, words: str
) -> None:
    token = tmp_path / "token"
    token.write_text(content)
    token.chmod(mode)
    done = subprocess.run(
        [*AGENT, "trace-server", "--db", str(tmp_path / "t.db"), "--token-file", str(token)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert words in done.stderr
    assert "PART2" not in done.stderr
    assert "Traceback" not in done.stderr
