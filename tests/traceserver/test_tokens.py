"""One credential per dock: `trace-server token add/revoke/list`, kept only as hashes, bound to
the dock's device_id (403 for another's), revoked at the next request; the shared token stays.
A contract over both stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest

from scanner_agent.traceserver import TraceServerThread, TraceStore, is_postgres, issue_token
from tests.traceserver._stores import BACKENDS, fresh_db

SHARED = "shared-demo-token"
SERVER = [sys.executable, "-m", "scanner_agent", "trace-server"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SERVER, *args], capture_output=True, text=True, timeout=60)


def add_token(db: str, device: str) -> tuple[str, str]:
    """``token add``: the token printed (stdout) and its id (named on stderr)."""
    result = cli("token", "add", device, "--db", db)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    token_id = token.split(".")[1]
    assert token_id in result.stderr
    return token, token_id


def batch(device: str, n: int) -> dict[str, object]:
    return {
        "batch_id": f"{device}-b{n}",
        "device_id": device,
        "sent_at": "2026-12-07T08:00:00Z",
        "events": [
            {
                "event_id": f"{device}-e{n}",
                "code": f"8{n:019d}",
                "scheme": "cn20",
                "action": "ship",
                "bill": "B-1",
                "scanned_at": "2026-12-07T08:00:00Z",
                "source": "tcp:x",
            }
        ],
    }


def send(url: str, token: str, body: dict[str, object]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(body["batch_id"])}
    return httpx.post(url + "/v1/batches", json=body, headers=headers, timeout=10)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store of each backend, as a server would have made it (the SQLite file exists)."""
    db = fresh_db(request.param, tmp_path, request)
    if not is_postgres(db):
        TraceStore(db).close()
    return str(db)


def token_rows(db: str) -> list[tuple[object, ...]]:
    """Every row of the store's ``device_tokens`` table, as its driver reads it."""
    if is_postgres(db):
        with psycopg.connect(db) as conn:
            return conn.execute("SELECT * FROM device_tokens").fetchall()
    with sqlite3.connect(db) as lite:
        return lite.execute("SELECT * FROM device_tokens").fetchall()


def test_a_token_is_stored_only_as_a_hash(database: str) -> None:
    token, token_id = add_token(database, "dock-1")
    secret = token.rsplit(".", 1)[1]
    rows = token_rows(database)
    assert len(rows) == 1
    text = repr(rows)
    assert secret not in text
    assert token_id in text
    listed = cli("token", "list", "--db", database)
    assert listed.returncode == 0
    assert token_id in listed.stdout
    assert "dock-1" in listed.stdout
    assert secret not in listed.stdout


def test_a_dock_sends_its_own_batches_only_and_a_revoked_token_is_refused(database: str) -> None:
    token, token_id = add_token(database, "dock-1")
    with TraceServerThread(database, SHARED) as server:
        assert send(server.url, token, batch("dock-1", 1)).status_code == 200
        other = send(server.url, token, batch("dock-2", 2))
        assert other.status_code == 403
        assert server.store.count_events() == 1
        # Another dock's batch id cannot fetch that batch's stored reply either.
        assert send(server.url, SHARED, batch("dock-2", 3)).status_code == 200
        assert send(server.url, token, batch("dock-2", 3)).status_code == 403
        # The shared token still sends for any device (the demo's).
        assert send(server.url, SHARED, batch("dock-9", 4)).status_code == 200
        wrong_secret = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        assert send(server.url, wrong_secret, batch("dock-1", 5)).status_code == 401
        lookup = httpx.get(
            server.url + "/v1/codes/" + f"8{1:019d}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert lookup.status_code == 200
        assert cli("token", "revoke", token_id, "--db", database).returncode == 0
        assert send(server.url, token, batch("dock-1", 6)).status_code == 401
    assert cli("token", "revoke", token_id, "--db", database).returncode != 0


def test_without_a_shared_token_only_dock_tokens_open_the_service(database: str) -> None:
    token, _ = add_token(database, "dock-1")
    with TraceServerThread(database, None) as server:
        assert send(server.url, token, batch("dock-1", 1)).status_code == 200
        assert send(server.url, "anything", batch("dock-1", 2)).status_code == 401


def test_a_token_for_an_sqlite_store_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    """A mistyped --db must not become a new, empty store holding the token."""
    missing = tmp_path / "no-such.db"
    result = cli("token", "add", "dock-1", "--db", str(missing))
    assert result.returncode != 0
    assert "no trace store" in result.stderr
    assert not missing.exists()


def test_an_sqlite_store_made_before_dock_tokens_gains_them(tmp_path: Path) -> None:
    """A store of schema 1 (no device_tokens) is brought up to date when opened."""
    db = tmp_path / "old.db"
    TraceStore(db).close()
    with sqlite3.connect(db) as lite:
        lite.execute("DROP TABLE device_tokens")
        lite.execute("PRAGMA user_version = 1")
    token, _ = add_token(str(db), "dock-1")
    with TraceServerThread(db, None) as server:
        assert send(server.url, token, batch("dock-1", 1)).status_code == 200
    with sqlite3.connect(db) as lite:
        assert lite.execute("PRAGMA user_version").fetchone() == (2,)


def test_a_new_sqlite_store_holding_the_token_hashes_is_not_world_readable(
    tmp_path: Path,
) -> None:
    """The store keeps the docks' token hashes and every event: created 0640 whatever the
    umask (as the agent's outbox is), and SQLite gives its -wal and -shm the same mode."""
    path = tmp_path / "trace.db"
    old = os.umask(0o022)
    try:
        TraceStore(path).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    issue_token(str(path), "dock-1")
    with TraceStore(path):
        for side in (Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(side.stat().st_mode) == 0o640, side
