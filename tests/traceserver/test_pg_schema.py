"""The PostgreSQL schema: versioned migrations applied by `trace-server migrate`, events
partitioned by month with the indexes the look-ups use, and a server that refuses a database
it was not migrated for."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, date, datetime

import httpx
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from scanner_agent.traceserver import SchemaMismatch, TraceServerThread, migrate
from scanner_agent.traceserver._pgschema import (
    CONNECT_TIMEOUT_S,
    SCHEMA_VERSION,
    connect,
    ensure_partitions,
)
from tests.support.postgres import PostgresCluster

TOKEN = "test-token"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner_agent", "trace-server", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_migrate_applies_each_version_once_and_says_so(postgres_url: str) -> None:
    first = run_cli("migrate", "--db", postgres_url)
    assert first.returncode == 0, first.stderr
    assert "migrations applied: 1" in first.stdout
    assert postgres_url not in first.stdout + first.stderr
    again = run_cli("migrate", "--db", postgres_url)
    assert again.returncode == 0, again.stderr
    assert "already current" in again.stdout
    with psycopg.connect(postgres_url) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_migrate_refuses_an_sqlite_file(tmp_path: object) -> None:
    result = run_cli("migrate", "--db", "trace.db")
    assert result.returncode != 0
    assert "postgresql://" in result.stderr


def test_events_are_partitioned_by_month_with_indexes_for_each_lookup(postgres_url: str) -> None:
    migrate(postgres_url)
    month = datetime.now(UTC).strftime("events_%Y_%m")
    with psycopg.connect(postgres_url) as conn:
        strategy = conn.execute(
            "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'events'::regclass"
        ).fetchone()
        partitions = {
            str(row[0])
            for row in conn.execute(
                "SELECT inhrelid::regclass::text FROM pg_inherits"
                " WHERE inhparent = 'events'::regclass"
            )
        }
        indexes = {
            str(row[0])
            for row in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'events'")
        }
        plan = conn.execute("EXPLAIN SELECT * FROM events WHERE code = 'x' ORDER BY seq").fetchall()
    assert strategy == ("r",)  # range, on received_at
    assert {month, "events_default"} <= partitions
    assert any("(code, seq)" in index for index in indexes)
    assert any("(seq)" in index for index in indexes)
    assert "Seq Scan" not in "\n".join(str(row[0]) for row in plan)


def test_a_stored_event_lands_in_its_month_not_the_default_partition(postgres_url: str) -> None:
    migrate(postgres_url)
    batch = {
        "batch_id": "b-1",
        "device_id": "dock-1",
        "sent_at": "2026-12-07T08:00:00Z",
        "events": [
            {
                "event_id": "e-1",
                "code": "81234567890123456789",
                "scheme": "cn20",
                "action": "ship",
                "bill": "B-1",
                "scanned_at": "2026-12-07T08:00:00Z",
                "source": "tcp:dock-1",
            }
        ],
    }
    with TraceServerThread(postgres_url, TOKEN) as server:
        reply = httpx.post(
            server.url + "/v1/batches",
            json=batch,
            headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "b-1"},
            timeout=10,
        )
    assert reply.status_code == 200, reply.text
    with psycopg.connect(postgres_url) as conn:
        where = conn.execute("SELECT tableoid::regclass::text FROM events").fetchall()
    assert where == [(datetime.now(UTC).strftime("events_%Y_%m"),)]


def test_partitions_ahead_are_made_once_and_a_month_already_in_default_is_left(
    postgres_url: str,
) -> None:
    migrate(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO events (event_id, code, scheme, action, bill, scanned_at, source,"
            " device_id, batch_id, received_at) VALUES"
            " ('e', 'c', 'cn20', 'ship', 'b', 't', 's', 'd', 'b', '2031-03-05T00:00:00Z')"
        )
        made = ensure_partitions(conn, months_ahead=2, today=date(2031, 2, 10))
        assert made == ["events_2031_02", "events_2031_04"]
        assert ensure_partitions(conn, months_ahead=2, today=date(2031, 2, 10)) == []


def test_the_server_refuses_a_database_not_migrated_for_it(postgres_url: str) -> None:
    with pytest.raises(SchemaMismatch, match="trace-server migrate"):
        TraceServerThread(postgres_url, TOKEN).start()


@pytest.mark.parametrize(
    "args",
    [
        ("migrate",),
        ("token", "list"),
        ("--token", "a-shared-token-for-the-test"),  # serve, one worker
        ("--workers", "2", "--token", "a-shared-token-for-the-test"),
    ],
    ids=["migrate", "token-list", "serve", "serve-workers"],
)
def test_an_unreachable_or_unmigrated_database_is_one_error_line_not_a_traceback(
    postgres_cluster: PostgresCluster, postgres_url: str, args: tuple[str, ...]
) -> None:
    """What an operator mistyping the URI, or starting before `migrate`, sees: the CLI's
    one-line error and its exit status, never a Python traceback, and never the password."""
    missing = postgres_cluster.url("no_such_db").replace("postgres@", "postgres:S3cretPw@")
    cases = [missing]
    if args[0] != "migrate":
        cases.append(postgres_url)  # exists, never migrated
    for url in cases:
        result = run_cli(*args, "--db", url, "--listen", "127.0.0.1:0")
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert "S3cretPw" not in result.stderr + result.stdout
        lines = [line for line in result.stderr.splitlines() if "--token shows" not in line]
        assert len(lines) == 1, lines
        assert lines[0].startswith("scanner-agent: error: trace-server"), lines


@pytest.mark.parametrize(
    "args",
    [("migrate",), ("token", "list"), ("--token", "a-shared-token-for-the-test")],
    ids=["migrate", "token-list", "serve"],
)
def test_a_database_host_that_never_answers_is_one_error_line_not_a_hang(
    args: tuple[str, ...],
) -> None:
    """A database address that takes the TCP connection and never speaks (a host half up, a
    firewall swallowing the reply): libpq alone would wait forever, so every command and each
    pooled connection stops after the connect timeout with the CLI's one error line."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never accepts or answers
        url = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/db?sslmode=disable"
        result = run_cli(*args, "--db", url, "--listen", "127.0.0.1:0")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "--token shows" not in line]
    assert len(lines) == 1, lines
    assert lines[0].startswith("scanner-agent: error: trace-server"), lines
    assert "timeout" in lines[0], lines


def test_connections_take_the_default_connect_timeout_unless_the_uri_sets_one(
    postgres_url: str,
) -> None:
    """The default bounds a silent host; an installer's own ``connect_timeout`` wins."""
    with connect(postgres_url) as conn:
        assert f"connect_timeout={CONNECT_TIMEOUT_S}" in conn.info.dsn.split()
    with connect(make_conninfo(postgres_url, connect_timeout=3)) as conn:
        assert "connect_timeout=3" in conn.info.dsn.split()
