"""What may be at ``outbox.path``, and the modes of the files the outbox makes (issue 16 item 10).

The open refuses a symlink, a directory and another program's SQLite file
before it writes a byte, and creates the outbox, WAL and SHM 0640 whatever
the umask (checked in a subprocess: the umask is process-wide).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from scanner_agent.kernel import OutboxError
from scanner_agent.outbox import FILE_MODE, OUTBOX_APPLICATION_ID, Outbox
from tests.support.outbox import cn20_scans
from tests.support.polling import wait_for


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _foreign(path: Path, *, app_id: int = 0) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    db.execute("INSERT INTO invoices (total) VALUES (12.5)")
    if app_id:
        db.execute(f"PRAGMA application_id = {app_id}")
    db.commit()
    db.close()


def test_a_symlink_is_refused_and_its_target_left_untouched(tmp_path: Path) -> None:
    target = tmp_path / "target.db"
    _foreign(target)
    link = tmp_path / "outbox.db"
    link.symlink_to(target)
    before, listing = _digest(target), _listing(tmp_path)
    with pytest.raises(OutboxError, match="symbolic link"):
        Outbox.open(link)
    assert _digest(target) == before
    assert _listing(tmp_path) == listing


def test_a_symlink_to_a_real_outbox_is_refused_too(tmp_path: Path) -> None:
    Outbox.open(tmp_path / "real.db").close()
    (tmp_path / "outbox.db").symlink_to(tmp_path / "real.db")
    with pytest.raises(OutboxError, match="symbolic link"):
        Outbox.open(tmp_path / "outbox.db")


@pytest.mark.parametrize("app_id", [0, 0x47504B47])
def test_another_programs_database_is_refused_untouched(tmp_path: Path, app_id: int) -> None:
    path = tmp_path / "outbox.db"
    _foreign(path, app_id=app_id)
    before, listing = _digest(path), _listing(tmp_path)
    with pytest.raises(OutboxError, match=r"not an outbox|another program's") as err:
        Outbox.open(path)
    assert "left untouched" in str(err.value)
    assert _digest(path) == before
    assert _listing(tmp_path) == listing  # no -wal, no -shm, nothing moved aside
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "_migrations" not in tables


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outbox.db").mkdir()
    with pytest.raises(OutboxError, match="is a directory"):
        Outbox.open(tmp_path / "outbox.db")


def test_an_empty_file_becomes_an_outbox_with_the_agents_application_id(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.touch()
    with Outbox.open(path) as box:
        box.enqueue_many(cn20_scans(0, 3))
    header = path.read_bytes()[:100]
    assert int.from_bytes(header[68:72], "big") == OUTBOX_APPLICATION_ID
    with Outbox.open(path) as box:  # and it opens again as the agent's own
        assert box.stats().counts["pending"] == 3


def test_an_outbox_from_before_the_application_id_opens_and_gets_it(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox.open(path) as box:
        box.enqueue_many(cn20_scans(0, 2))
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 0")
    db.commit()
    db.close()
    with Outbox.open(path) as box:
        assert box.stats().counts["pending"] == 2
    assert sqlite3.connect(path).execute("PRAGMA application_id").fetchone()[0] == (
        OUTBOX_APPLICATION_ID
    )


_OPEN_UNDER_UMASK_0 = """
import os, sys
os.umask(0)
from scanner_agent.outbox import Outbox
from tests.support.outbox import cn20_scans
box = Outbox.open(sys.argv[1])
box.enqueue_many(cn20_scans(0, 5))
print("open", flush=True)
sys.stdin.read()
box.close()
"""


def _modes(directory: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()}


def test_the_library_creates_outbox_wal_and_shm_0640_under_umask_0(tmp_path: Path) -> None:
    path = tmp_path / "box" / "outbox.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _OPEN_UNDER_UMASK_0, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "open\n"
        modes = _modes(path.parent)
        assert set(modes) == {"outbox.db", "outbox.db-wal", "outbox.db-shm"}, modes
        assert all(mode == FILE_MODE for mode in modes.values()), modes
        assert stat.S_IMODE(path.parent.stat().st_mode) & 0o007 == 0
    finally:
        proc.communicate("", timeout=60)


def test_an_outbox_left_world_readable_is_tightened_on_open(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    Outbox.open(path).close()
    path.chmod(0o644)
    with Outbox.open(path) as box:
        box.enqueue_many(cn20_scans(0, 1))
        assert {name: mode & 0o007 for name, mode in _modes(tmp_path).items()} == {
            "outbox.db": 0,
            "outbox.db-wal": 0,
            "outbox.db-shm": 0,
        }


def test_run_under_umask_0_creates_no_file_other_users_may_read(tmp_path: Path) -> None:
    """The daemon, started by hand from a shell whose umask is 0: outbox, WAL, SHM, socket."""
    token = tmp_path / "token"
    token.write_text("tok-123456\n")
    token.chmod(0o600)
    codes = tmp_path / "codes.txt"
    codes.write_text("81234561442725099325\n")
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""
device_id = "umask-dock"
[outbox]
path = "{tmp_path / "data" / "outbox.db"}"
min_free_mb = 0
[sync]
url = "http://127.0.0.1:9"
token_file = "{token}"
[control]
socket = "{tmp_path / "control.sock"}"
[[source]]
type = "replay"
path = "{codes}"
"""
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "scanner_agent", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        umask=0,
    )
    try:
        wanted = {"outbox.db", "outbox.db-wal", "outbox.db-shm"}

        def listening(path: Path) -> bool:
            """The socket gets its mode between bind and listen: only a listening one is done."""
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.connect(str(path))
                except OSError:
                    return False
            return True

        def started() -> bool:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            data = tmp_path / "data"
            made = set(_listing(data)) if data.exists() else set()
            return wanted <= made and listening(tmp_path / "control.sock")

        wait_for(started, 60, "the daemon to start")
        modes = _modes(tmp_path / "data")
        assert all(mode & 0o027 == 0 for mode in modes.values()), modes
        assert stat.S_IMODE((tmp_path / "data").stat().st_mode) & 0o027 == 0
        assert stat.S_IMODE((tmp_path / "control.sock").stat().st_mode) == 0o660
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert os.path.exists(tmp_path / "data" / "outbox.db")
