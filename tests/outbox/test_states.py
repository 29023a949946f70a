"""The one definition of row and bill states (``outbox/_states.py``), on real outbox files.

Two kinds of check: the SQL conditions partition any row whatever its columns
hold (rows written directly, impossible combinations too), and, driven through
the library's own calls in random order, every library reader (``stats``,
``rows``, the bill book's totals and states) agrees after every step.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner_agent.bills import BillBook, BillError, BillTotals
from scanner_agent.outbox import (
    BACKLOG_STATES,
    STORED_STATES,
    BillState,
    EventResult,
    NewScan,
    Outbox,
    RowState,
    backlog_count,
    backlog_where,
    bill_state,
    count_row_states,
    row_state_sql,
    row_state_where,
    uuid7,
)

DEVICE = "dock"


def test_every_row_state_has_a_condition_and_a_bill_total() -> None:
    assert {s.value for s in STORED_STATES} <= {s.value for s in RowState}
    assert {RowState.PENDING, RowState.HELD, RowState.IN_FLIGHT} == BACKLOG_STATES
    for s in RowState:
        assert row_state_where(s)
        assert f"'{s.value}'" in row_state_sql()
        assert hasattr(BillTotals(), s.value), f"BillTotals has no {s.value} count"
    with pytest.raises(ValueError, match="unknown row state 'lost'"):
        row_state_where("lost")
    with pytest.raises(ValueError, match="not a table name"):
        row_state_sql("s; DROP TABLE scans")


ROW = st.tuples(
    st.sampled_from([s.value for s in STORED_STATES]),
    st.sampled_from([0, 1]),  # removed
    st.sampled_from(["OPEN", "CLOSED", "dock-ship"]),  # an open, a closed and a default bill
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, max_size=40))
def test_the_conditions_partition_any_rows_and_every_reader_counts_alike(
    rows: list[tuple[str, int, str]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outbox.db"
        with Outbox.open(path) as box:
            book = BillBook(box)
            book.open("OPEN", 201, device_id=DEVICE)
            book.open("CLOSED", 201, device_id="other")
            book.close("CLOSED")
        db = sqlite3.connect(path)
        db.executemany(
            "INSERT INTO scans (event_id, code, scheme, raw, action, bill, device_id, source, "
            "scanned_at, state, removed) VALUES (?, ?, 'cn20', 'r', 'ship', ?, ?, 's', "
            "'2026-11-23T00:00:00+00:00', ?, ?)",
            [
                (uuid7(), f"8{i:019d}", bill, DEVICE, state, removed)
                for i, (state, removed, bill) in enumerate(rows)
            ],
        )
        db.commit()
        expected: Counter[str] = Counter()
        for state, removed, bill in rows:
            if removed:
                expected["removed"] += 1
            elif state == "pending" and bill == "OPEN":
                expected["held"] += 1
            else:
                expected[state] += 1
        matches = {
            s: {r[0] for r in db.execute(f"SELECT seq FROM scans WHERE {row_state_where(s)}")}
            for s in RowState
        }
        seen = [seq for found in matches.values() for seq in found]
        assert sorted(seen) == list(range(1, len(rows) + 1))  # each row in exactly one state
        case = dict(db.execute(f"SELECT seq, {row_state_sql()} FROM scans").fetchall())
        assert all(case[seq] == s.value for s, found in matches.items() for seq in found)
        counts = count_row_states(db)
        owed = db.execute(f"SELECT COUNT(*) FROM scans WHERE {backlog_where()}").fetchone()[0]
        db.close()
        assert counts == {s.value: expected[s.value] for s in RowState}
        assert owed == backlog_count(counts)
        with Outbox.open_readonly(path) as box:
            assert box.stats().counts == counts
            for s in RowState:
                assert [r.seq for r in box.rows(state=s, limit=100)] == sorted(matches[s])
            assert Counter(r.state for r in box.rows(limit=100)) == +Counter(counts)


def test_bill_state_follows_from_the_stored_state_and_the_rows() -> None:
    none = {s.value: 0 for s in RowState}
    assert bill_state(None, none) is BillState.DEFAULT
    assert bill_state("open", none) is BillState.OPEN
    assert bill_state("open", {**none, "delivered": 3}) is BillState.OPEN
    assert bill_state("closed", none) is BillState.EMPTY
    assert bill_state("closed", {**none, "removed": 2}) is BillState.EMPTY
    assert bill_state("closed", {**none, "pending": 1, "delivered": 4}) is BillState.CLOSED
    assert bill_state("closed", {**none, "in_flight": 1}) is BillState.CLOSED
    assert bill_state("closed", {**none, "delivered": 2, "removed": 1}) is BillState.DELIVERED
    assert bill_state("closed", {**none, "delivered": 2, "rejected": 1}) is (
        BillState.PARTLY_REJECTED
    )


@given(counts=st.fixed_dictionaries({s.value: st.integers(0, 3) for s in RowState}))
def test_a_closed_bill_is_delivered_only_when_every_scan_on_it_is(counts: dict[str, int]) -> None:
    state = bill_state("closed", counts)
    on_bill = sum(n for s, n in counts.items() if s != RowState.REMOVED)
    assert (state is BillState.DELIVERED) == (on_bill > 0 and counts["delivered"] == on_bill)
    assert (state is BillState.EMPTY) == (on_bill == 0)
    assert (state is BillState.CLOSED) == (backlog_count(counts) > 0)


# -- the library's own calls, in random order ------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("scan"), st.sampled_from(["dock-ship", "A", "B"])),
        st.tuples(st.just("open"), st.sampled_from(["A", "B"])),
        st.tuples(st.just("close"), st.sampled_from(["A", "B"])),
        st.tuples(st.just("undo"), st.sampled_from(["dock-ship", "A", "B"])),
        st.tuples(st.just("lease"), st.integers(1, 4)),
        st.tuples(st.just("settle"), st.sampled_from(["accepted", "duplicate", "rejected"])),
        st.tuples(st.just("release"), st.just("")),
        st.tuples(st.just("retry"), st.just("")),
    ),
    max_size=30,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_library_readers_agree_after_every_step(ops: list[tuple[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, Outbox.open(Path(tmp) / "o.db") as box:
        book = BillBook(box)
        batches: list[str] = []
        n = 0
        for op, arg in ops:
            if op == "scan":
                bill = str(arg)
                # A scan goes to its bill only while it is open (else to the default bill).
                if bill != "dock-ship" and _stored(box, bill) != "open":
                    bill = "dock-ship"
                n += 1
                code = f"8{n:019d}"
                box.enqueue_many(
                    [NewScan(uuid7(), code, "cn20", code, None, "ship", bill, DEVICE, "s", "t")]
                )
            elif op == "open":
                with contextlib.suppress(BillError):  # exists already
                    book.open(str(arg), 201, device_id=f"dev-{arg}")
            elif op == "close":
                if _stored(box, str(arg)) == "open":
                    book.close(str(arg))
            elif op == "undo":
                # Refused when closed, unknown, with nothing left, or the last scan was sent.
                with contextlib.suppress(BillError):
                    book.undo(str(arg), reason="test")
            elif op == "lease":
                batch = box.lease(int(str(arg)), lease_s=3600)
                if batch is not None:
                    batches.append(batch.batch_id)
            elif op == "settle" and batches:
                batch_id = batches.pop(0)
                rows = [r for r in box.rows(limit=1000) if r.batch_id == batch_id]
                box.settle(
                    batch_id,
                    {
                        r.event_id: EventResult(str(arg), "no" if arg == "rejected" else None)
                        for r in rows
                        if r.state == RowState.IN_FLIGHT
                    },
                )
            elif op == "release" and batches:
                box.release(batches[-1], "network down")
            elif op == "retry":
                box.requeue_rejected()
            _check_agreement(box, book)


def _stored(box: Outbox, number: str) -> str | None:
    with box.atomic() as db:
        row = db.execute("SELECT state FROM bills WHERE number = ?", (number,)).fetchone()
    return str(row[0]) if row else None


def _check_agreement(box: Outbox, book: BillBook) -> None:
    stats = box.stats()
    rows = box.rows(limit=10_000)
    assert sum(stats.counts.values()) == len(rows)
    assert +Counter(stats.counts) == Counter(r.state for r in rows)
    assert stats.backlog == sum(1 for r in rows if RowState(r.state) in BACKLOG_STATES)
    assert (stats.held, stats.removed) == (stats.counts["held"], stats.counts["removed"])
    for r in rows:
        assert (r.state == RowState.REMOVED) == bool(r.removed)
    by_bill: Counter[str] = Counter()
    for number in sorted({r.bill for r in rows}):
        bill = book.get(number)
        totals = {s.value: getattr(bill.totals, s.value) for s in RowState}
        mine = Counter(r.state for r in rows if r.bill == number)
        assert +Counter(totals) == mine
        assert bill.totals.scans == sum(mine.values()) - mine["removed"]
        assert bill.state == bill_state(_stored(box, number), totals)
        view = book.view(number, scan_limit=10_000)
        assert Counter(s.state for s in view.scans) == mine
        by_bill.update(totals)
    assert +by_bill == +Counter(stats.counts)
