"""The outbox on real SQLite files: commit, duplicates, leases, settle, recovery."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scanner_agent.errors import OutboxError, OutboxFullError
from scanner_agent.outbox import (
    SCHEMA_VERSION,
    EnqueueStatus,
    EventResult,
    NewScan,
    Outbox,
    RejectRecord,
    RowState,
    uuid7,
)
from tests.outbox.conftest import cn20_scans, new_scan

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
    assert outbox.rejects() == [record]
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


def test_prune_deletes_only_old_delivered_rows_in_steps(outbox: Outbox) -> None:
    outbox.enqueue_many(codes(5))
    batch = outbox.lease(3)
    assert batch is not None
    outbox.settle(batch.batch_id, {e.event_id: EventResult("accepted") for e in batch.events})
    future = datetime.now(UTC) + timedelta(days=1)
    assert outbox.prune_delivered(future, limit=2) == 2
    assert outbox.prune_delivered(future, limit=2) == 1
    assert outbox.prune_delivered(future, limit=2) == 0
    assert outbox.stats().counts == {"pending": 2, "in_flight": 0, "delivered": 0, "rejected": 0}


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
