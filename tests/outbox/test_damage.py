"""Damaged rows are quarantined with an alarm; every other row is still delivered and exported.

Issue 16 item 6: one flipped byte that ``quick_check`` does not see made every
lease fail forever ("Could not decode to UTF-8 column"), and a flipped digit
was delivered as another code.  These tests damage real files byte by byte.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner_agent.config import AgentConfig
from scanner_agent.outbox import EventResult, NewScan, Outbox, RowState
from scanner_agent.outbox._checksum import row_checksum
from tests.outbox.damage import damage_code, other_hex_digit, poke, row_offset
from tests.support.outbox import cn20_scans


def filled(path: Path, n: int = 100) -> list[NewScan]:
    """An outbox at ``path`` with ``n`` pending scans, checkpointed into the main file."""
    scans = cn20_scans(0, n)
    with Outbox.open(path) as box:
        box.enqueue_many(scans)
    return scans


def deliver_all(box: Outbox) -> list[str]:
    """Lease and settle until nothing is pending; the codes delivered, in order."""
    sent: list[str] = []
    while (batch := box.lease(30)) is not None:
        sent += [e.code for e in batch.events]
        box.settle(batch.batch_id, {e.event_id: EventResult("accepted") for e in batch.events})
    return sent


def test_every_row_carries_the_checksum_of_its_content(tmp_path: Path) -> None:
    scans = filled(tmp_path / "o.db", 5)
    with sqlite3.connect(tmp_path / "o.db") as db:
        stored = [r[0] for r in db.execute("SELECT crc FROM scans ORDER BY seq")]
    assert stored == [row_checksum(s) for s in scans]


@pytest.mark.parametrize(("value", "what"), [(0xFF, "not UTF-8"), (ord("9"), "another digit")])
def test_a_damaged_row_is_quarantined_and_every_other_row_delivered(
    tmp_path: Path, value: int, what: str
) -> None:
    path = tmp_path / "o.db"
    scans = filled(path)
    damage_code(path, scans[49], value=value)
    with Outbox.open(path) as box:
        sent = deliver_all(box)
        assert sent == [s.code for s in scans if s is not scans[49]], what
        assert box.stats().counts[RowState.QUARANTINED] == 1
        assert box.stats().backlog == 0
        (alarm,) = box.alarms
        assert "quarantined" in alarm
        assert "seq 50" in alarm
        (q,) = box.quarantined()
        assert q.seq == 50
        assert scans[49].event_id.encode() in bytes.fromhex(q.content_hex)
    # Persisted: a later open neither leases it nor forgets it.
    with Outbox.open(path) as box:
        assert box.lease(1000) is None
        assert [q.seq for q in box.quarantined()] == [50]


def test_a_damaged_row_in_a_batch_being_retried_is_quarantined_and_the_rest_resent(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.db"
    scans = filled(path, 10)
    with Outbox.open(path) as box:
        first = box.lease(10)
        assert first is not None
        box.release(first.batch_id, "network down")
    damage_code(path, scans[3])
    with Outbox.open(path) as box:
        sent = deliver_all(box)
        assert sorted(sent) == sorted(s.code for s in scans if s is not scans[3])
        assert [q.seq for q in box.quarantined()] == [4]


@pytest.mark.parametrize("column", ["code", "raw", "bill", "scanned_at"])
def test_a_text_stored_as_a_blob_is_quarantined_not_a_lease_failing_forever(
    tmp_path: Path, column: str
) -> None:
    """One flipped bit in a record header turns a text's serial type into a blob's.

    Its bytes (and so its checksum) are unchanged, but SQLite's JSON functions,
    which the lease reads through, refuse a blob: every lease failed with "JSON
    cannot hold BLOB values" (bench/corruption.py, seed 1736).
    """
    path = tmp_path / "o.db"
    scans = filled(path, 10)
    with Outbox.open(path) as box:
        batch = box.lease(10)  # gives every row a batch_id
        assert batch is not None
        box.release(batch.batch_id, "network down")
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE scans SET {column} = CAST({column} AS BLOB) WHERE seq = 4")
    with Outbox.open(path) as box:
        sent = deliver_all(box)
        assert [q.seq for q in box.quarantined()] == [4]
    assert sorted(sent) == sorted(s.code for s in scans if s is not scans[3])


@pytest.mark.parametrize("where", ["row", "batch", "blob"])
def test_an_in_flight_row_whose_batch_id_is_damaged_is_sent_again_with_an_alarm(
    tmp_path: Path, where: str
) -> None:
    """The batch id is not covered by the checksum (it changes as the row moves on).

    One flipped bit in it, in the row or in the ``batches`` table, left the
    row in flight forever: no batch named it, so no lease returned it, and
    nothing said so.  (Stored as a blob, it is also no batch's: a blob never
    equals a text.)
    """
    path = tmp_path / "o.db"
    scans = filled(path, 10)
    with Outbox.open(path) as box:
        batch = box.lease(10)
        assert batch is not None
        box.release(batch.batch_id, "network down")
    data = path.read_bytes()
    at = data.find(batch.batch_id.encode())  # the first copy: a row's (the table's pages first)
    if where == "batch":
        with sqlite3.connect(path) as db:
            db.execute("UPDATE batches SET batch_id = 'x' || substr(batch_id, 2)")
    elif where == "blob":  # a flipped bit in the record header: the same bytes, typed a blob
        with sqlite3.connect(path) as db:
            db.execute("UPDATE scans SET batch_id = CAST(batch_id AS BLOB) WHERE seq = 4")
    else:
        poke(path, at + 3, data[at + 3] ^ 1)
    with Outbox.open(path) as box:
        assert any("no batch" in a for a in box.alarms), box.alarms
        sent = deliver_all(box)
        assert box.stats().backlog == 0
    assert sorted(sent) == sorted(s.code for s in scans)


def test_a_damaged_event_id_is_quarantined_too(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    scans = filled(path, 10)
    at = row_offset(path, scans[6]) - 3  # a hex digit of the event id
    poke(path, at, other_hex_digit(path, at))
    with Outbox.open(path) as box:
        sent = deliver_all(box)
    assert sent == [s.code for s in scans if s is not scans[6]]


def test_export_writes_every_readable_row_and_reports_the_damaged_ones(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    scans = filled(path, 20)
    damage_code(path, scans[4])  # not UTF-8
    damage_code(path, scans[11], value=ord("7"))  # a silently altered code
    proc = subprocess.run(
        [sys.executable, "-m", "scanner_agent", "queue", "export", "--outbox", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    exported = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["code"] for r in exported] == [
        s.code for i, s in enumerate(scans) if i not in (4, 11)
    ]
    assert proc.returncode == 3  # ran, and found damaged rows
    assert "2 damaged rows not exported" in proc.stderr
    assert "seq 5" in proc.stderr
    assert "seq 12" in proc.stderr


def test_export_pages_give_every_row_once_across_pages_damaged_ones_apart(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    scans = filled(path, 20)
    damage_code(path, scans[4])
    damage_code(path, scans[11], value=ord("7"))
    with Outbox.open(path) as box:
        pages = list(box.export_pages(page=3))  # a damaged row ends or starts some pages
    assert len(pages) == 7  # 20 rows, 3 a page
    assert all(len(rows) + len(bad) <= 3 for rows, bad in pages)
    assert [r.code for rows, _ in pages for r in rows] == [
        s.code for i, s in enumerate(scans) if i not in (4, 11)
    ]
    assert [b.seq for _, bad in pages for b in bad] == [5, 12]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(row=st.integers(0, 29), at=st.integers(0, 19), value=st.integers(0, 255))
def test_any_byte_of_any_code_changed_is_never_delivered_altered(
    tmp_path_factory: pytest.TempPathFactory, row: int, at: int, value: int
) -> None:
    path = tmp_path_factory.mktemp("o") / "o.db"
    scans = filled(path, 30)
    original = scans[row].code.encode()
    if original[at] != value:  # writing the byte that is there damages nothing (poke refuses it)
        damage_code(path, scans[row], at=at, value=value)
    with Outbox.open(path) as box:
        sent = deliver_all(box)
        quarantined = [q.seq for q in box.quarantined()]
    expected = [s.code for s in scans]
    if original[at] == value:
        assert sent == expected
        assert quarantined == []
    else:
        del expected[row]
        assert sent == expected
        assert quarantined == [row + 1]


def _index_without(path: Path, seq: int) -> None:
    """Rebuild scans_unsent without ``seq``'s entry, leaving its definition as it was.

    The state a flipped bit in an index page leaves: the table holds a pending
    row its index does not list (``quick_check`` checks structure, not this).
    """
    db = sqlite3.connect(path, isolation_level=None)
    (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'scans_unsent'").fetchone()
    db.execute("DROP INDEX scans_unsent")
    db.execute(f"{sql} AND seq != {seq}")
    (version,) = db.execute("PRAGMA schema_version").fetchone()
    db.execute("PRAGMA writable_schema = ON")
    db.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'scans_unsent'", (sql,))
    db.execute(f"PRAGMA schema_version = {version + 1}")
    db.execute("PRAGMA writable_schema = OFF")
    db.close()


def test_a_pending_row_missing_from_its_index_is_found_at_open_and_delivered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.db"
    scans = filled(path, 20)
    _index_without(path, 7)
    with sqlite3.connect(path) as db:  # the damage is real: the index skips it
        listed = db.execute(
            "SELECT COUNT(*) FROM scans INDEXED BY scans_unsent WHERE state = 'pending'"
        ).fetchone()[0]
        assert listed == 19
    with Outbox.open(path) as box:
        assert any("index" in a for a in box.alarms)
        assert deliver_all(box) == [s.code for s in scans]


async def test_the_daemon_delivers_around_a_damaged_row_and_shows_the_alarm_in_status(
    tmp_path: Path,
    trace_server: Any,
    make_config: Callable[..., AgentConfig],
    start_agent: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "outbox.db"
    scans = filled(path, 30)
    damage_code(path, scans[12], value=ord("1"))  # another code, as a failing disk would
    agent = await start_agent(make_config(trace_server.url, outbox={"path": str(path)}))
    await agent.drained()
    status = await agent.daemon.status()
    (alarm,) = status["alarms"]
    assert "1 damaged row quarantined (seq 13: checksum mismatch)" in alarm
    assert status["queue"]["quarantined"] == 1
    assert status["backlog"] == 0
    events, _ = trace_server.store.events_after(0, limit=1000)
    held = {e["code"] for e in events}
    assert held == {s.code for s in scans} - {scans[12].code}  # and not the altered one
    logged = [r for r in caplog.records if "seq 13" in r.getMessage()]
    assert len(logged) == 1  # logged once
    assert logged[0].levelname == "ERROR"
