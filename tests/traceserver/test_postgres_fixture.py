"""The PostgreSQL test server (tests/support/postgres.py) is real and ours alone."""

from __future__ import annotations

import os

import psycopg

from tests.support.postgres import PostgresCluster


def test_each_test_gets_its_own_empty_database_on_a_real_server(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    other = postgres_cluster.create_database()
    assert other != postgres_url
    with psycopg.connect(postgres_url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert version is not None
    assert int(version[0]) >= 150000
    assert tables == (0,)


def test_the_server_never_runs_as_root(postgres_cluster: PostgresCluster) -> None:
    """PostgreSQL refuses root; when the tests run as root the server runs as nobody."""
    pid = int((postgres_cluster.socket_dir / "data" / "postmaster.pid").read_text().split()[0])
    assert os.stat(f"/proc/{pid}").st_uid != 0
