"""The outbox on real SQLite files: commit, duplicates, leases, settle, recovery."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.config import AgentConfig
from scanner_agent.kernel import OutboxError, OutboxFullError
from scanner_agent.outbox import (
    SCHEMA_VERSION,
    EnqueueStatus,
    EventResult,
    NewScan,
    Outbox,
    RejectRecord,
    RowState,
    WalCheckpoint,
    _connect,
    uuid7,
)
from scanner_agent.outbox._open import move_aside
from tests.support.agent import acks
from tests.support.outbox import cn20_scans, new_scan

scan = new_scan


def codes(n: int, start: int = 0) -> list[NewScan]:
    return cn20_scans(start, n)


def test_new_outbox_is_wal_with_full_sync_at_current_schema(outbox: Outbox) -> None:
    db = sqlite3.connect(outbox.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert outbox.stats().schema_version == SCHEMA_VERSION
    db.close()


def test_enqueued_scans_are_pending_in_capture_order_with_increasing_seq(outbox: Outbox) -> None:
    results = outbox.enqueue_many(codes(5))
    assert [r.status for r in results] == [EnqueueStatus.QUEUED] * 5
    seqs = [r.seq for r in results]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 5
    rows = outbox.rows()
    assert [r.state for r in rows] == [RowState.PENDING] * 5
    assert [r.event_id for r in rows] == [r.event_id for r in results]


def test_committed_scans_survive_reopening_the_file(tmp_path: Path) -> None:
    with Outbox.open(tmp_path / "o.db") as box:
        box.enqueue_many(codes(3))
    with Outbox.open(tmp_path / "o.db") as box:
        assert box.stats().counts["pending"] == 3


def test_same_code_bill_and_action_is_a_duplicate_within_and_across_groups(outbox: Outbox) -> None:
    first = scan("80000000000000000001")
    again_in_group = scan("80000000000000000001")
    results = outbox.enqueue_many([first, again_in_group])
    assert [r.status for r in results] == [EnqueueStatus.QUEUED, EnqueueStatus.DUPLICATE]
    assert results[1].seq == results[0].seq
    later = outbox.enqueue_many([scan("80000000000000000001")])
    assert later[0].status is EnqueueStatus.DUPLICATE
    assert outbox.stats().counts["pending"] == 1
    assert outbox.reject_reasons() == {"duplicate scan": 2}


def test_same_code_on_another_bill_or_action_is_not_a_duplicate(outbox: Outbox) -> None:
    results = outbox.enqueue_many(
        [
            scan("80000000000000000001", bill="B1"),
            scan("80000000000000000001", bill="B2"),
            scan("80000000000000000001", bill="B1", action="receive"),
        ]
    )
    assert all(r.status is EnqueueStatus.QUEUED for r in results)


def test_duplicates_are_queued_when_the_check_is_off(outbox: Outbox) -> None:
    results = outbox.enqueue_many(
        [scan("80000000000000000001"), scan("80000000000000000001")], reject_duplicates=False
    )
    assert all(r.status is EnqueueStatus.QUEUED for r in results)


def test_lease_takes_oldest_pending_rows_and_marks_them_in_flight(outbox: Outbox) -> None:
    outbox.enqueue_many(codes(10))
    batch = outbox.lease(4)
    assert batch is not None
    assert batch.attempts == 0
    assert [e.code for e in batch.events] == [s.code for s in codes(4)]
    counts = outbox.stats().counts
    assert counts["in_flight"] == 4
    assert counts["pending"] == 6


def test_lease_respects_the_byte_budget_but_always_takes_one_event(outbox: Outbox) -> None:
    outbox.enqueue_many(codes(10))
    batch = outbox.lease(10, max_bytes=600)
    assert batch is not None
    assert 1 <= len(batch.events) < 10
    tiny = outbox.lease(10, max_bytes=1)
    assert tiny is not None
    assert len(tiny.events) == 1


def test_released_batch_is_leased_again_with_the_same_id_and_rows(outbox: Outbox) -> None:
    outbox.enqueue_many(codes(5))
    batch = outbox.lease(3)
    assert batch is not None
    outbox.release(batch.batch_id, "connection refused")
    again = outbox.lease(100)
    assert again is not None
    assert again.batch_id == batch.batch_id
    assert again.events == batch.events
    assert again.attempts == 1


def test_batch_leased_by_a_crashed_sender_is_reclaimed_after_its_lease_expires(
    tmp_path: Path,
) -> None:
    box = Outbox.open(tmp_path / "o.db")
    box.enqueue_many(codes(3))
    batch = box.lease(3, lease_s=0.0)
    assert batch is not None
    box._db.close()  # a crash: no release, no close
    reopened = Outbox.open(tmp_path / "o.db")
    again = reopened.lease(3)
    assert again is not None
    assert again.batch_id == batch.batch_id
    assert [e.event_id for e in again.events] == [e.event_id for e in batch.events]
    reopened.close()


def test_unexpired_lease_is_not_handed_out_twice(outbox: Outbox) -> None:
    outbox.enqueue_many(codes(3))
    assert outbox.lease(3, lease_s=60) is not None
    assert outbox.lease(3) is None


class _SteppingClock:
    """A clock a test moves by hand (the outbox reads every time it writes through it)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize("lease_s", [1.0, 60.0, 3600.0])
def test_a_lease_comes_back_exactly_when_the_clock_passes_its_deadline(
    tmp_path: Path, lease_s: float
) -> None:
    clock = _SteppingClock()
    with Outbox.open(tmp_path / "outbox.db", clock=clock) as box:
        box.enqueue_many(codes(3))
        batch = box.lease(3, lease_s=lease_s)
        assert batch is not None
        clock.now += timedelta(seconds=lease_s - 0.5)
        assert box.lease(3) is None  # still leased
        clock.now += timedelta(seconds=0.5)
        again = box.lease(3, lease_s=lease_s)
        assert again is not None
        assert (again.batch_id, again.events, again.attempts) == (
            batch.batch_id,
            batch.events,
            1,
        )
        clock.now += timedelta(minutes=5)
        box.settle(again.batch_id, {e.event_id: EventResult("accepted") for e in again.events})
        settled = {r.settled_at for r in box.rows()}
    assert settled == {clock.now.isoformat(timespec="milliseconds")}


def test_settle_marks_accepted_and_duplicate_delivered_and_rejected_dead_letter(
    outbox: Outbox,
) -> None:
    outbox.enqueue_many(codes(3))
    batch = outbox.lease(3)
    assert batch is not None
    a, b, c = (e.event_id for e in batch.events)
    summary = outbox.settle(
        batch.batch_id,
        {
            a: EventResult("accepted"),
            b: EventResult("duplicate"),
            c: EventResult("rejected", "code not registered"),
        },
    )
    assert (summary.accepted, summary.duplicate, summary.rejected) == (1, 1, 1)
    by_id = {r.event_id: r for r in outbox.rows()}
    assert by_id[a].state == by_id[b].state == RowState.DELIVERED
    assert by_id[c].state == RowState.REJECTED
    assert by_id[c].reason == "code not registered"
    assert outbox.stats().backlog == 0
    assert outbox.lease(10) is None


def test_settle_with_results_not_matching_the_batch_changes_nothing(outbox: Outbox) -> None:
    outbox.enqueue_many(codes(2))
    batch = outbox.lease(2)
    assert batch is not None
    with pytest.raises(ValueError, match="1 missing"):
        outbox.settle(batch.batch_id, {batch.events[0].event_id: EventResult("accepted")})
    assert outbox.stats().counts["in_flight"] == 2


def test_dead_letters_can_be_sent_again(outbox: Outbox) -> None:
    outbox.enqueue_many(codes(2))
    batch = outbox.lease(2)
    assert batch is not None
    outbox.dead_letter_batch(batch.batch_id, "400: malformed")
    assert outbox.stats().counts["rejected"] == 2
    assert outbox.requeue_rejected() == 2
    again = outbox.lease(10)
    assert again is not None
    assert again.batch_id != batch.batch_id
    assert len(again.events) == 2


def test_unbatched_rows_return_to_pending_in_order(outbox: Outbox) -> None:
    outbox.enqueue_many(codes(4))
    batch = outbox.lease(4)
    assert batch is not None
    assert outbox.unbatch(batch.batch_id) == 4
    half = outbox.lease(2)
    assert half is not None
    assert [e.event_id for e in half.events] == [e.event_id for e in batch.events[:2]]


def test_rejects_are_kept_for_audit(outbox: Outbox) -> None:
    record = RejectRecord(
        "6901234567892", "6901234567892", "a product barcode", "invalid", "d", "s", "t"
    )
    outbox.enqueue_many([], [record])
    assert outbox.rejects() == [dataclasses.replace(record, last_at=record.scanned_at)]
    assert outbox.stats().rejects == 1


def test_reserve_below_free_space_refuses_scans_and_writes_nothing(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.db", min_free_bytes=1 << 62)
    with pytest.raises(OutboxFullError, match="below the reserve"):
        box.enqueue_many(codes(1))
    box.min_free_bytes = 0
    assert box.stats().counts["pending"] == 0
    box.enqueue_many(codes(1))
    assert box.stats().counts["pending"] == 1
    box.close()


def test_corrupt_file_is_moved_aside_and_a_fresh_outbox_started(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is not a database" * 100)
    box = Outbox.open(path)
    assert box.alarms
    assert "moved aside" in box.alarms[0]
    aside = list(tmp_path.glob("outbox.db.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"this is not a database")
    box.enqueue_many(codes(1))
    assert box.stats().counts["pending"] == 1
    box.close()


def _frozen_clock() -> datetime:
    """A clock that always reads the same second."""
    return datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


def test_files_moved_aside_in_the_same_second_never_overwrite_each_other(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    for n in (1, 2, 3):
        path.write_bytes(f"damaged copy {n} ".encode() * 100)
        with Outbox.open(path, clock=_frozen_clock) as box:
            assert "moved aside" in box.alarms[0]
    stamp = "outbox.db.corrupt-20261123T100000Z"
    aside = {p.name: p.read_bytes()[:15] for p in tmp_path.glob("outbox.db.corrupt-*")}
    assert aside == {
        stamp: b"damaged copy 1 ",
        f"{stamp}.1": b"damaged copy 2 ",
        f"{stamp}.2": b"damaged copy 3 ",
    }


def test_moving_aside_keeps_the_wal_with_its_file_and_skips_a_name_partly_taken(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").write_bytes(f"main{suffix}".encode())
    earlier_wal = tmp_path / "outbox.db.corrupt-20261123T100000Z-wal"
    earlier_wal.write_bytes(b"an earlier copy's WAL")
    moved = move_aside(path, _frozen_clock)
    assert moved.name == "outbox.db.corrupt-20261123T100000Z.1"
    assert [Path(f"{moved}{s}").read_bytes() for s in ("", "-wal", "-shm")] == [
        b"main",
        b"main-wal",
        b"main-shm",
    ]
    assert earlier_wal.read_bytes() == b"an earlier copy's WAL"
    assert not any(Path(f"{path}{s}").exists() for s in ("", "-wal", "-shm"))


def test_a_name_taken_while_moving_aside_leaves_no_file_split_across_two_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "outbox.db"
    for suffix in ("", "-wal"):
        Path(f"{path}{suffix}").write_bytes(f"main{suffix}".encode())
    first = tmp_path / "outbox.db.corrupt-20261123T100000Z"
    link = os.link

    def racing_link(src: Any, dst: Any, **kwargs: Any) -> None:
        # Another process takes the first name's -wal between the check and the rename.
        if Path(dst) == Path(f"{first}-wal") and not Path(dst).exists():
            Path(dst).write_bytes(b"someone else's")
        link(src, dst, **kwargs)

    monkeypatch.setattr(os, "link", racing_link)
    moved = move_aside(path, _frozen_clock)
    assert moved.name == "outbox.db.corrupt-20261123T100000Z.1"
    assert [Path(f"{moved}{s}").read_bytes() for s in ("", "-wal")] == [b"main", b"main-wal"]
    assert not first.exists()  # our main file went back before the next name was tried
    assert Path(f"{first}-wal").read_bytes() == b"someone else's"


def test_moving_aside_never_overwrites_on_a_filesystem_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "outbox.db"
    for n in (1, 2):
        path.write_bytes(f"copy {n}".encode())
        move_aside(path, _frozen_clock)
    stamp = tmp_path / "outbox.db.corrupt-20261123T100000Z"
    assert [stamp.read_bytes(), Path(f"{stamp}.1").read_bytes()] == [b"copy 1", b"copy 2"]


def test_a_damaged_page_moves_the_outbox_aside_and_starts_a_fresh_one(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox.open(path) as box:
        box.enqueue_many(codes(500))
    db = sqlite3.connect(path)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    (root,) = db.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'scans'").fetchone()
    db.close()
    original = path.read_bytes()
    with path.open("r+b") as f:  # a valid file with the scans table's root page garbled
        f.seek((root - 1) * page_size)
        f.write(b"\xa5" * page_size)
    box = Outbox.open(path)
    assert "failed its integrity check" in box.alarms[0]
    (aside,) = tmp_path.glob("outbox.db.corrupt-*")  # and no -wal or -shm the check made
    damaged = aside.read_bytes()
    assert len(damaged) == len(original)
    assert damaged[: (root - 1) * page_size] == original[: (root - 1) * page_size]
    assert box.stats().counts["pending"] == 0
    box.enqueue_many(codes(1))
    assert box.stats().counts["pending"] == 1
    box.close()


_SUFFIXES = ("", "-wal", "-shm")


def _digests(path: Path) -> dict[str, str]:
    """SHA-256 of ``path`` and of its ``-wal`` and ``-shm``, for those that exist."""
    return {
        s: hashlib.sha256(Path(f"{path}{s}").read_bytes()).hexdigest()
        for s in _SUFFIXES
        if Path(f"{path}{s}").exists()
    }


def _outbox_with_unmerged_wal(path: Path, first: int, more: int) -> int:
    """An outbox of ``first + more`` scans, the last ``more`` only in its ``-wal``, as a crash
    leaves it (the files copied while the writer was open); the root page of ``bills``, which
    the WAL does not hold.
    """
    with Outbox.open(path) as box:
        box.enqueue_many(codes(first))
    db = sqlite3.connect(path)
    (root,) = db.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'bills'").fetchone()
    db.close()
    snap = path.with_name("snap")
    snap.mkdir()
    with Outbox.open(path) as box:
        box.enqueue_many(codes(more, start=first))
        for s in _SUFFIXES:
            shutil.copy2(f"{path}{s}", snap / f"{path.name}{s}")
    for s in _SUFFIXES:
        os.replace(snap / f"{path.name}{s}", f"{path}{s}")
    snap.rmdir()
    wal = Path(f"{path}-wal").read_bytes()
    page_size = int.from_bytes(wal[8:12], "big")
    in_wal = {int.from_bytes(wal[at : at + 4], "big") for at in range(32, len(wal), 24 + page_size)}
    assert in_wal  # the WAL holds frames that the main file has not got
    assert root not in in_wal  # so a damaged copy of it in the main file stays damaged
    return int(root)


def _garble_page(path: Path, page: int) -> None:
    db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with path.open("r+b") as f:
        f.seek((page - 1) * page_size)
        f.write(b"\xa5" * page_size)


def test_a_damaged_outbox_is_moved_aside_with_its_wal_byte_for_byte(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    _garble_page(path, _outbox_with_unmerged_wal(path, 300, 100))
    found = _digests(path)
    assert set(found) == set(_SUFFIXES)
    box = Outbox.open(path)
    assert "failed its integrity check" in box.alarms[0]
    (aside,) = tmp_path.glob("outbox.db.corrupt-*[0-9Z]")
    moved = _digests(aside)
    assert set(moved) == set(_SUFFIXES)  # the -shm goes along (SQLite may have rebuilt it)
    assert moved[""] == found[""]  # the main file not checkpointed into
    assert moved["-wal"] == found["-wal"]  # the WAL neither deleted nor changed
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"outbox.db{s}" for s in _SUFFIXES] + [f"{aside.name}{s}" for s in _SUFFIXES]
    )
    assert box.stats().counts["pending"] == 0  # nothing of the old WAL replayed
    box.enqueue_many(codes(1))
    assert box.stats().counts["pending"] == 1
    box.close()


def test_a_garbage_wal_of_a_damaged_outbox_is_moved_aside_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox.open(path) as box:
        box.enqueue_many(codes(300))
    db = sqlite3.connect(path)
    (root,) = db.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'scans'").fetchone()
    db.close()
    _garble_page(path, root)
    garbage = bytes(range(256)) * 200
    Path(f"{path}-wal").write_bytes(garbage)
    found = _digests(path)
    box = Outbox.open(path)
    assert "failed its integrity check" in box.alarms[0]
    (aside,) = tmp_path.glob("outbox.db.corrupt-*[0-9Z]")
    assert _digests(aside) == found  # main file and -wal; no -shm made up for it
    assert Path(f"{aside}-wal").read_bytes() == garbage
    assert box.stats().counts["pending"] == 0
    box.close()


def test_a_healthy_outbox_with_an_unmerged_wal_opens_with_every_row_and_no_leftovers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    _outbox_with_unmerged_wal(path, 300, 100)
    box = Outbox.open(path)
    assert box.alarms == []
    assert box.stats().counts["pending"] == 400
    assert [r.code for r in box.rows(limit=1000)][-1] == codes(1, start=399)[0].code
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"outbox.db{s}" for s in _SUFFIXES)
    box.close()
    assert [p.name for p in tmp_path.iterdir()] == ["outbox.db"]


async def test_a_moved_aside_outbox_is_an_alarm_in_daemon_status(
    tmp_path: Path, make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is not a database" * 100)
    agent = await start_agent(make_config(sync={"enabled": False}, outbox={"path": str(path)}))
    (alarm,) = (await agent.daemon.status())["alarms"]
    assert "moved aside" in alarm
    assert await agent.scan("80000000000000000001") == acks("80000000000000000001")
    await agent.stop()


def _wal_size(box: Outbox) -> int:
    wal = Path(f"{box.path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_checkpoint_is_passive_while_busy_and_truncates_the_wal_once_idle(outbox: Outbox) -> None:
    outbox.enqueue_many(codes(200))
    assert _wal_size(outbox) > 0
    busy = outbox.checkpoint()  # written since the last call: PASSIVE, the WAL file stays
    assert (busy.mode, busy.busy) == ("PASSIVE", False)
    assert busy.checkpointed_frames == busy.log_frames > 0
    assert _wal_size(outbox) > 0
    idle = outbox.checkpoint()  # nothing written since: TRUNCATE
    assert idle == WalCheckpoint("TRUNCATE", False, 0, 0)
    assert _wal_size(outbox) == 0
    outbox.enqueue_many(codes(1, start=200))
    assert outbox.checkpoint().mode == "PASSIVE"


def test_checkpoint_never_waits_for_a_reader_holding_an_old_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An hour-long busy timeout: a checkpoint that waited for the reader would hang the test.
    monkeypatch.setattr(_connect, "BUSY_TIMEOUT_S", 3600.0)
    box = Outbox.open(tmp_path / "outbox.db")
    box.enqueue_many(codes(50))
    reader = sqlite3.connect(box.path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM scans").fetchone() == (50,)
    box.enqueue_many(codes(50, start=50))  # the writer commits while the snapshot is open
    passive = box.checkpoint()
    assert (passive.mode, passive.busy) == ("PASSIVE", False)
    assert 0 < passive.checkpointed_frames < passive.log_frames  # stopped at the reader's mark
    truncate = box.checkpoint()
    assert (truncate.mode, truncate.busy) == ("TRUNCATE", True)  # gave up, did not wait
    assert truncate.log_frames > 0
    assert box._db.execute("PRAGMA busy_timeout").fetchone() == (3_600_000,)  # restored
    box.enqueue_many(codes(1, start=100))
    assert reader.execute("SELECT COUNT(*) FROM scans").fetchone() == (50,)
    reader.execute("COMMIT")
    reader.close()
    box.checkpoint()
    assert box.checkpoint() == WalCheckpoint("TRUNCATE", False, 0, 0)
    assert box.stats().counts["pending"] == 101
    box.close()


def test_prune_deletes_only_old_delivered_rows_in_steps(outbox: Outbox) -> None:
    outbox.enqueue_many(codes(5))
    batch = outbox.lease(3)
    assert batch is not None
    outbox.settle(batch.batch_id, {e.event_id: EventResult("accepted") for e in batch.events})
    future = datetime.now(UTC) + timedelta(days=1)
    assert outbox.prune_delivered(future, limit=2) == 2
    assert outbox.prune_delivered(future, limit=2) == 1
    assert outbox.prune_delivered(future, limit=2) == 0
    assert outbox.stats().counts == {
        "pending": 2,
        "held": 0,
        "in_flight": 0,
        "delivered": 0,
        "rejected": 0,
        "removed": 0,
        "quarantined": 0,
    }


def test_closed_outbox_refuses_use_with_a_clear_error(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.db")
    box.close()
    box.close()
    with pytest.raises(OutboxError, match="closed"):
        box.enqueue_many(codes(1))


def test_event_ids_are_unique_time_ordered_uuid7() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert len(set(ids)) == 5000
    assert ids == sorted(ids)
    assert all(i[14] == "7" for i in ids)


def test_a_long_report_never_blocks_commits(outbox: Outbox) -> None:
    outbox.enqueue_many(codes(50))
    # A report mid-way through its read (a month of audit rows, say) holds a read transaction on
    # the read connection; the writer must still commit, and later reports must see the rows.
    report = outbox._reader().execute("SELECT seq FROM scans ORDER BY seq")
    assert report.fetchone() is not None
    results = outbox.enqueue_many(codes(5, start=50))
    assert all(r.status is EnqueueStatus.QUEUED for r in results)
    assert len(report.fetchall()) == 49  # the open read still sees its own snapshot
    assert outbox.stats().counts["pending"] == 55
