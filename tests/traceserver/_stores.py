"""A fresh, empty trace store of either backend, for the tests that run over both."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner_agent.traceserver import migrate
from tests.support.postgres import PostgresCluster

BACKENDS = ("sqlite", "postgresql")


def fresh_db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str | Path:
    """A new, empty store of ``backend``: an SQLite file, or a migrated PostgreSQL database."""
    if backend == "sqlite":
        return tmp_path / "trace.db"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_database()
    migrate(url)
    return url
