"""Group commits of every shape: what ``enqueue_many`` answers is what the file holds.

The fast path computes sequence numbers from ``lastrowid`` instead of reading
them back, so these tests check each answer against the rows themselves,
across random groups with duplicates inside a group, against earlier groups,
with and without the duplicate check, with refused scans, with removed rows,
inside an open transaction, and past the single-statement size.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner_agent.config import OutboxConfig
from scanner_agent.outbox import EnqueueResult, EnqueueStatus, NewScan, Outbox, RejectRecord, uuid7
from scanner_agent.outbox._enqueue import ROWS_PER_STATEMENT
from tests.support.outbox import new_scan


def scan(code: str, bill: str = "B1", action: str = "ship") -> NewScan:
    return new_scan(code, bill=bill, action=action)


def scan_wire(s: NewScan) -> dict[str, str]:
    keys = ("event_id", "code", "scheme", "action", "bill", "scanned_at", "source")
    return {k: getattr(s, k) for k in keys}


def reject(code: str) -> RejectRecord:
    return RejectRecord(
        code, code, "not a trace code", "invalid", "dock", "t", "2026-11-23T10:00:00.000+00:00"
    )


def rows(outbox: Outbox) -> dict[str, tuple[int, str, str, str]]:
    db = sqlite3.connect(outbox.path)
    try:
        return {
            str(e): (int(q), str(c), str(b), str(a))
            for e, q, c, b, a in db.execute("SELECT event_id, seq, code, bill, action FROM scans")
        }
    finally:
        db.close()


def reject_count(outbox: Outbox) -> int:
    db = sqlite3.connect(outbox.path)
    try:
        return int(db.execute("SELECT COALESCE(SUM(count), 0) FROM rejects").fetchone()[0])
    finally:
        db.close()


def check_answers(outbox: Outbox, groups: list[tuple[list[NewScan], list[EnqueueResult]]]) -> None:
    held = rows(outbox)
    by_seq = {seq: (code, bill, action) for seq, code, bill, action in held.values()}
    for scans, results in groups:
        assert len(results) == len(scans)
        for s, r in zip(scans, results, strict=True):
            assert r.event_id == s.event_id
            if r.status is EnqueueStatus.QUEUED:
                assert held[s.event_id] == (r.seq, s.code, s.bill, s.action)
            else:
                assert s.event_id not in held
                assert r.seq is not None
                assert by_seq[r.seq] == (s.code, s.bill, s.action)


GROUP = st.lists(
    st.tuples(st.integers(0, 30), st.sampled_from(["B1", "B2"]), st.booleans()), max_size=40
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(groups=st.lists(GROUP, min_size=1, max_size=8), check=st.booleans())
def test_every_answer_matches_the_file(
    tmp_path: Path, groups: list[list[tuple[int, str, bool]]], check: bool
) -> None:
    box = Outbox.open(tmp_path / f"o-{uuid7()}.db")
    try:
        done = []
        refused = 0
        duplicates = 0
        for group in groups:
            scans = [scan(f"8{code:019d}", bill) for code, bill, _ in group]
            rejects = [reject(f"bad{code}") for code, _, bad in group if bad and code % 3 == 0]
            results = box.enqueue_many(scans, rejects, reject_duplicates=check)
            done.append((scans, results))
            refused += len(rejects)
            duplicates += sum(r.status is EnqueueStatus.DUPLICATE for r in results)
        check_answers(box, done)
        if not check:
            assert duplicates == 0
        assert reject_count(box) == refused + duplicates
        seqs = sorted(q for q, *_ in rows(box).values())
        assert seqs == sorted(set(seqs))
    finally:
        box.close()


def test_a_group_larger_than_one_statement(outbox: Outbox) -> None:
    n = ROWS_PER_STATEMENT * 2 + 17
    scans = [scan(f"8{i:019d}") for i in range(n)] + [scan(f"8{5:019d}")]
    results = outbox.enqueue_many(scans)
    check_answers(outbox, [(scans, results)])
    assert results[-1].status is EnqueueStatus.DUPLICATE


def test_a_group_inside_an_open_transaction_rolls_back_with_it(outbox: Outbox) -> None:
    scans = [scan(f"8{i:019d}") for i in range(10)]

    def fail_after_enqueue() -> None:
        with outbox.atomic():
            outbox.enqueue_many(scans)
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        fail_after_enqueue()
    assert rows(outbox) == {}
    results = outbox.enqueue_many(scans)
    check_answers(outbox, [(scans, results)])


def test_sequence_numbers_continue_after_the_newest_rows_are_deleted(outbox: Outbox) -> None:
    first = [scan(f"8{i:019d}") for i in range(5)]
    outbox.enqueue_many(first)
    db = sqlite3.connect(outbox.path)
    db.execute("DELETE FROM scans WHERE seq > 2")
    db.commit()
    db.close()
    again = [scan(f"8{i:019d}") for i in range(10, 15)]
    results = outbox.enqueue_many(again)
    check_answers(outbox, [(again, results)])
    assert [r.seq for r in results] == [6, 7, 8, 9, 10]  # AUTOINCREMENT: never reused


def test_lease_takes_exactly_the_events_that_fit_the_byte_budget(outbox: Outbox) -> None:
    scans = [scan(f"8{i:019d}", bill=f"B{'货' * (i * 3)}") for i in range(12)]
    outbox.enqueue_many(scans)
    sizes = [
        len(json.dumps(scan_wire(s), ensure_ascii=False, separators=(",", ":")).encode()) + 1
        for s in scans
    ]
    budget = 1 + sum(sizes[:5]) + sizes[5] // 2  # five fit, the sixth does not
    batch = outbox.lease(100, max_bytes=budget)
    assert batch is not None
    assert [e.event_id for e in batch.events] == [s.event_id for s in scans[:5]]
    rest = outbox.lease(100, max_bytes=1 + sum(sizes[5:]))
    assert rest is not None
    assert rest.events_json is not None
    assert len(rest.events_json.encode()) == sum(sizes[5:]) + 1
    assert [e.event_id for e in rest.events] == [s.event_id for s in scans[5:]]


def test_leased_events_carry_text_exactly_as_stored(outbox: Outbox) -> None:
    awkward = ['发货单 "A\\1"', "tab\there", "emoji \U0001f48a", "ctl \x1d\x00 end"]
    scans = [scan(f"8{i:019d}", bill=b) for i, b in enumerate(awkward)]
    outbox.enqueue_many(scans)
    batch = outbox.lease(10)
    assert batch is not None
    assert [(e.seq, e.event_id, e.bill) for e in batch.events] == [
        (i + 1, s.event_id, s.bill) for i, s in enumerate(scans)
    ]
    # The wire rendering SQLite made during the lease is the same events, in order.
    assert batch.events_json is not None
    assert json.loads(batch.events_json) == [e.to_wire() for e in batch.events]
    outbox.release(batch.batch_id, "network down")
    again = outbox.lease(10)
    assert again is not None
    assert again.batch_id == batch.batch_id
    assert again.events == batch.events
    assert again.events_json is not None
    assert json.loads(again.events_json) == [e.to_wire() for e in batch.events]


def _synchronous(outbox: Outbox) -> int:
    return int(outbox._db.execute("PRAGMA synchronous").fetchone()[0])


def test_only_settles_skip_the_fsync_and_full_sync_is_always_restored(outbox: Outbox) -> None:
    from scanner_agent.outbox import EventResult

    full = 2
    assert _synchronous(outbox) == full
    outbox.enqueue_many([scan(f"8{i:019d}") for i in range(3)])
    batch = outbox.lease(10)
    assert batch is not None
    assert _synchronous(outbox) == full
    with pytest.raises(ValueError, match="do not match"):
        outbox.settle(batch.batch_id, {"not-an-event": EventResult("accepted")})
    assert _synchronous(outbox) == full
    summary = outbox.settle(
        batch.batch_id, {e.event_id: EventResult("accepted") for e in batch.events}
    )
    assert summary.accepted == 3
    assert _synchronous(outbox) == full
    # A settle inside a caller's transaction leaves the caller's durability alone.
    outbox.enqueue_many([scan(f"8{i:019d}") for i in range(10, 12)])
    again = outbox.lease(10)
    assert again is not None
    with outbox.atomic():
        outbox.settle(again.batch_id, {e.event_id: EventResult("duplicate") for e in again.events})
        assert _synchronous(outbox) == full
    assert outbox.stats().counts["delivered"] == 5


def test_rows_aggregated_out_of_order_are_sorted_and_rendered_again(outbox: Outbox) -> None:
    from scanner_agent.outbox._lease import _lease_rows

    scans = [scan(f"8{i:019d}", bill='发货 "q"') for i in range(5)]
    outbox.enqueue_many(scans)
    rows, wire, damaged = _lease_rows(
        outbox._db, "SELECT * FROM scans ORDER BY seq DESC", (), "pending"
    )
    assert damaged == []
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    assert json.loads(wire) == [scan_wire(s) for s in scans]


def test_padded_size_classes_insert_exactly_the_real_rows(outbox: Outbox) -> None:
    from scanner_agent.outbox._enqueue import ROWS_PER_STATEMENT, insert_sql
    from scanner_agent.sqlrows import size_class

    done = []
    start = 0
    for size in (1, 63, 64, 65, 127, 128, 129, 700, 2175, 2176, 2177):
        scans = [scan(f"8{i:019d}") for i in range(start, start + size)]
        scans.append(scan(f"8{start:019d}"))  # and a duplicate of its first, last
        start += size
        done.append((scans, outbox.enqueue_many(scans)))
    check_answers(outbox, done)
    assert all(r[-1].status is EnqueueStatus.DUPLICATE for _, r in done)
    assert len(rows(outbox)) == start
    assert ROWS_PER_STATEMENT == 1984  # 16 values a row: the fields and the checksum
    assert OutboxConfig().commit_max_rows <= ROWS_PER_STATEMENT  # a full group is one statement
    sizes = {size_class(n) for n in range(1, ROWS_PER_STATEMENT + 1)}
    assert len(sizes) == 64 + 30
    assert max(sizes) == 1984
    assert insert_sql.cache_info().currsize <= 2 * len(sizes)


def test_padded_groups_without_duplicates_take_the_one_statement_path(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scanner_agent.outbox import Outbox as Store

    def no_read_back(*_args: object) -> list[EnqueueResult]:
        raise AssertionError("a group without duplicates must not be read back")

    monkeypatch.setattr(Store, "_results_after_insert", staticmethod(no_read_back))
    done = []
    start = 0
    for size in (1, 64, 65, 100, 129, 1000, 2048, 2176):
        scans = [scan(f"8{i:019d}") for i in range(start, start + size)]
        start += size
        done.append((scans, outbox.enqueue_many(scans)))
    check_answers(outbox, done)
    assert len(rows(outbox)) == start


def test_a_failed_audit_write_after_the_commit_still_answers_truly(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from scanner_agent.outbox import Outbox as Store

    def broken(*_args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    first = [scan(f"8{i:019d}") for i in range(3)]
    outbox.enqueue_many(first)
    monkeypatch.setattr(Store, "_record_rejects", staticmethod(broken))
    group = [scan(f"8{i:019d}") for i in range(2, 6)]  # the first is a duplicate
    results = outbox.enqueue_many(group)
    check_answers(outbox, [(group, results)])
    assert [r.status for r in results] == [EnqueueStatus.DUPLICATE] + [EnqueueStatus.QUEUED] * 3
    assert "not kept for audit" in caplog.text


def test_a_settle_commits_without_fsync_and_a_scan_group_with_it(outbox: Outbox) -> None:
    from scanner_agent.outbox import EventResult

    statements: list[str] = []
    outbox.enqueue_many([scan(f"8{i:019d}") for i in range(3)])
    batch = outbox.lease(10)
    assert batch is not None
    outbox._db.set_trace_callback(statements.append)
    try:
        outbox.settle(batch.batch_id, {e.event_id: EventResult("accepted") for e in batch.events})
        settle = list(statements)
        statements.clear()
        outbox.enqueue_many([scan(f"8{i:019d}") for i in range(10, 12)])
        group = list(statements)
    finally:
        outbox._db.set_trace_callback(None)
    normal = settle.index("PRAGMA synchronous = NORMAL")
    assert normal < settle.index("COMMIT") < settle.index("PRAGMA synchronous = FULL")
    assert not any("synchronous" in s for s in group)


def test_empty_fields_round_trip_as_null_and_text_as_text(outbox: Outbox) -> None:
    """None is bound as '' (sqlrows) and stored as NULL; '' in an optional field means absent."""
    gs1 = NewScan(
        uuid7(), "0106901234567892215X", "gs1", "]d20106901234567892215X", "]d2", "ship", "B1",
        "dock", "t", "2026-01-01T00:00:00.000+00:00", "06901234567892", "06901234567892",
        "L1", "2027-01-31", "5X",
    )  # fmt: skip
    bare = new_scan("80000000000000000001")._replace(symbology="", serial="")
    outbox.enqueue_many([gs1, bare])
    stored = outbox._db.execute(
        "SELECT symbology, product, gtin, batch_no, expiry, serial, typeof(serial), raw "
        "FROM scans ORDER BY seq"
    ).fetchall()
    assert stored[0] == ("]d2", "06901234567892", "06901234567892", "L1", "2027-01-31", "5X",
                         "text", "]d20106901234567892215X")  # fmt: skip
    assert stored[1] == (None, None, None, None, None, None, "null", "80000000000000000001")


def test_no_statement_writing_scan_rows_builds_a_temporary_table_per_row(outbox: Outbox) -> None:
    """SQLite 3.40 evaluates CHECK (x IN (3+ constants)) with a temporary table for every
    row written; migration 6 states the checks as ORs.  A rule coming back as an IN list
    (or any other per-row ephemeral table) shows up here as an OpenEphemeral opcode."""
    from scanner_agent.outbox._batches import IN_BATCH
    from scanner_agent.outbox._enqueue import insert_sql

    statements = {
        "insert": (insert_sql(3, True), [""] * 48),
        "settle": (
            "UPDATE scans SET state = 'delivered', result = 'accepted', reason = NULL, "
            f"settled_at = ? WHERE {IN_BATCH}",
            ["t", 1, 2, "b"],
        ),
        "dead letter": (
            "UPDATE scans SET state = ?, result = ?, reason = ?, settled_at = ? WHERE seq = ?",
            ["rejected", "rejected", "r", "t", 1],
        ),
    }
    for name, (sql, params) in statements.items():
        ops = [r[1] for r in outbox._db.execute("EXPLAIN " + sql, params)]
        assert "OpenEphemeral" not in ops, name
    outbox.enqueue_many([new_scan("80000000000000000001")])
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):  # the rules still hold
        outbox._db.execute("UPDATE scans SET state = 'lost'")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        outbox._db.execute("UPDATE scans SET result = 'maybe'")
