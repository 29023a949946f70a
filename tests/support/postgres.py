"""A real PostgreSQL server from Debian's packages, in a temporary directory, for the tests.

The cluster is made by ``initdb`` and run by ``pg_ctl`` in a private directory,
listening only on a UNIX socket there (no TCP port to collide with another
test run or a system cluster).  PostgreSQL refuses to run as root, so when the
tests run as root (CI does) the server runs as ``nobody``: the directory is
made theirs and the programs are started with that user's ids.

Without PostgreSQL installed the tests that need it fail and say how to get it:
``make test`` installs the Debian package, so a missing server is a broken
machine, not a reason to skip the backend silently.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

__all__ = ["MISSING", "PostgresCluster", "find_bindir"]

MISSING = (
    "PostgreSQL server programs (initdb, pg_ctl) not found: install Debian's `postgresql` "
    "package (`make deps` does it as root; or `sudo apt-get install postgresql`), or set "
    "PG_BINDIR to their directory"
)
"""What a PostgreSQL test says when it cannot start a server."""

_SUPERUSER = "postgres"
_PORT = 5432  # only names the socket file, inside the cluster's private directory


def find_bindir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``: ``$PG_BINDIR`` or Debian's newest version."""
    if explicit := os.environ.get("PG_BINDIR"):
        return Path(explicit) if (Path(explicit) / "pg_ctl").exists() else None
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


class PostgresCluster:
    """One running PostgreSQL cluster; :meth:`create_database` gives each test its own database."""

    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        self._bindir = bindir
        self._durable = durable
        """Run with PostgreSQL's own durability (fsync, synchronous commit, full page
        writes), as a site would: the benchmarks' setting.  Tests leave it off: a
        throwaway cluster that no power cut can reach needs no fsync."""
        self._root = Path(tempfile.mkdtemp(prefix="scanner-agent-pg-"))
        self._data = self._root / "data"
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self._root, nobody.pw_uid, nobody.pw_gid)
            self._run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        self._started = False

    @property
    def socket_dir(self) -> Path:
        """The directory of the server's UNIX socket (libpq's ``host``)."""
        return self._root

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [str(self._bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            cwd=self._root,
            env={**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"},
            timeout=120,
            **self._run_as,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}")

    def start(self) -> PostgresCluster:
        """initdb (trust auth on the socket only) and start the server; wait until it is up."""
        self._run(
            "initdb",
            "-D",
            str(self._data),
            "-U",
            _SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",  # a throwaway cluster: no fsync of the files initdb writes
        )
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self._root}' -p {_PORT}"
            " -c max_connections=200"
        )
        if not self._durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self._data),
            "-o",
            options,
            "-l",
            str(self._root / "log"),
            "-w",
            "start",
        )
        self._started = True
        return self

    def url(self, database: str = "postgres") -> str:
        """A libpq URI for ``database`` over the cluster's socket."""
        return f"postgresql://{_SUPERUSER}@/{database}?host={self._root}&port={_PORT}"

    def create_database(self) -> str:
        """A new empty database; its URI."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (fast: open sessions are ended) and remove its directory."""
        try:
            if self._started:
                self._run("pg_ctl", "-D", str(self._data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)
