"""``Outbox.open_readonly``: a look at a (live) outbox file that can never change it."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from scanner_agent.kernel import OutboxError
from scanner_agent.outbox import SCHEMA_VERSION, Outbox
from tests.support.outbox import cn20_scans


def test_it_sees_what_a_live_writer_commits(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    outbox.enqueue_many(cn20_scans(1, 3))
    with caplog.at_level(logging.WARNING), Outbox.open_readonly(outbox.path) as ro:
        assert ro.stats().counts["pending"] == 3
        outbox.enqueue_many(cn20_scans(10, 2))  # committed while the reader is open
        assert [r.seq for r in ro.rows()] == [1, 2, 3, 4, 5]
        assert ro.stats().schema_version == SCHEMA_VERSION
    # Closing takes no part in the writer's checkpoints (nothing to warn about).
    assert not caplog.records
    assert outbox.stats().backlog == 5


def test_its_write_methods_fail_and_leave_the_file_alone(outbox: Outbox) -> None:
    outbox.enqueue_many(cn20_scans(1, 2))
    before = outbox.path.read_bytes()
    with Outbox.open_readonly(outbox.path) as ro:
        with pytest.raises(OutboxError, match="readonly"):
            ro.enqueue_many(cn20_scans(5, 1))
        with pytest.raises(OutboxError):
            ro.requeue_rejected()
    assert outbox.path.read_bytes() == before
    assert outbox.stats().backlog == 2


def test_a_missing_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.db"
    with pytest.raises(OutboxError, match="no such file"):
        Outbox.open_readonly(path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "not an outbox"), (b"not a database, " * 300, "file is not a database")],
)
def test_a_file_that_is_no_outbox_is_refused_not_moved_aside(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(content)
    with pytest.raises(OutboxError, match=message):
        Outbox.open_readonly(path)
    assert path.read_bytes() == content
    assert not list(tmp_path.glob("*.corrupt-*"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (f"DELETE FROM _migrations WHERE version = {SCHEMA_VERSION}", "older than"),
        (
            "INSERT INTO _migrations (version, name, applied_at) "
            f"VALUES ({SCHEMA_VERSION + 1}, 'future', '2030-01-01')",
            "newer scanner-agent",
        ),
    ],
)
def test_another_schema_version_is_refused_and_not_migrated(
    tmp_path: Path, change: str, message: str
) -> None:
    path = tmp_path / "outbox.db"
    Outbox.open(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute(change)
    db.close()
    before = path.read_bytes()
    with pytest.raises(OutboxError, match=message):
        Outbox.open_readonly(path)
    assert path.read_bytes() == before
