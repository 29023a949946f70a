"""Stateless workers on one PostgreSQL database: two agents sending the same batch to two
different workers get the same reply, and nothing is stored twice.  Real processes, real
concurrent requests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from scanner_agent.traceserver import migrate, open_store
from tests.support.net import served_url

TOKEN = "test-token"
SERVER = [sys.executable, "-m", "scanner_agent", "trace-server"]
AGENTS = 4
"""Concurrent senders of each batch."""


def cn20(n: int) -> str:
    return f"8{n:019d}"


def batch(n: int, codes: range) -> dict[str, object]:
    """Batch ``n``; its events' codes overlap other batches' (duplicates are decided once)."""
    return {
        "batch_id": f"b-{n}",
        "device_id": "dock-1",
        "sent_at": "2026-12-07T08:00:00Z",
        "events": [
            {
                "event_id": f"e-{n}-{code}",
                "code": cn20(code),
                "scheme": "cn20",
                "action": "ship",
                "bill": "B-1",
                "scanned_at": "2026-12-07T08:00:00Z",
                "source": "tcp:dock-1",
            }
            for code in codes
        ],
    }


def start(url: str, token_file: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """A trace-server on port 0 and the URL its own log line gives (a port picked in advance
    could be taken by another process before the server binds it)."""
    log = token_file.with_name(f"server-{len(list(token_file.parent.glob('server-*.log')))}.log")
    with log.open("ab") as err:
        process = subprocess.Popen(
            [
                *SERVER,
                *("--db", url, "--listen", "127.0.0.1:0", "--token-file", str(token_file)),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    base = served_url(log, process)
    assert httpx.get(base + "/v1/health", timeout=10).status_code == 200
    return process, base


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


@pytest.fixture
def database(postgres_url: str) -> str:
    migrate(postgres_url)
    return postgres_url


@pytest.fixture
def token_path(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def send_everywhere(bases: list[str], body: dict[str, object]) -> list[bytes]:
    """``AGENTS`` copies of one batch at once, spread over ``bases``, each on its own connection."""
    barrier = threading.Barrier(AGENTS)
    raw = json.dumps(body).encode()
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Idempotency-Key": str(body["batch_id"]),
        "Content-Type": "application/json",
    }

    def one(index: int) -> bytes:
        barrier.wait(10)
        response = httpx.post(
            bases[index % len(bases)] + "/v1/batches", content=raw, headers=headers, timeout=30
        )
        assert response.status_code == 200, response.text
        return response.content

    with ThreadPoolExecutor(AGENTS) as pool:
        return list(pool.map(one, range(AGENTS)))


def check_same_replies_and_stored_once(database: str, bases: list[str]) -> None:
    for n in range(10):
        # Batches n and n+1 share codes: a code is held by exactly one event.
        replies = send_everywhere(bases, batch(n, range(n * 20, n * 20 + 40)))
        assert len(set(replies)) == 1, "copies of one batch got different replies"
        statuses = [r["status"] for r in json.loads(replies[0])["results"]]
        assert statuses == ["duplicate" if n else "accepted"] * 20 + ["accepted"] * 20
    store = open_store(database)
    try:
        assert store.count_batches() == 10
        # Each batch held 20 new codes plus 20 codes the next batch repeats.
        assert store.count_events() == 10 * 40 - 9 * 20
    finally:
        store.close()


def test_two_servers_on_one_database_answer_a_batch_alike_and_store_it_once(
    database: str, token_path: Path
) -> None:
    first, first_url = start(database, token_path)
    second, second_url = start(database, token_path)
    try:
        check_same_replies_and_stored_once(database, [first_url, second_url])
        pages = [
            httpx.get(
                u + "/v1/events",
                params={"limit": 10_000},
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=10,
            ).json()
            for u in (first_url, second_url)
        ]
        assert pages[0] == pages[1]
    finally:
        assert stop(first) == 0
        assert stop(second) == 0


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            if ppid == pid and b"spawn_main" in cmdline:
                found.append(int(entry))
    return found


def test_workers_option_runs_that_many_processes_on_one_port(
    database: str, token_path: Path
) -> None:
    process, base = start(database, token_path, "--workers", "2")
    try:
        assert len(children(process.pid)) == 2
        check_same_replies_and_stored_once(database, [base])
    finally:
        code = stop(process)
    assert code == 0
    assert children(process.pid) == []


def test_workers_need_postgresql(tmp_path: Path, token_path: Path) -> None:
    result = subprocess.run(
        [
            *SERVER,
            *("--db", str(tmp_path / "t.db"), "--token-file", str(token_path)),
            *("--workers", "2", "--listen", "127.0.0.1:0"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "postgresql://" in result.stderr
