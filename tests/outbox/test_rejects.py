"""Refusals are bounded on disk: aggregated, capped, pruned, and kept out of the reserve.

Issue 16 item 1: a client sending 16 MiB of one-byte lines left 7.5 million
reject rows (1.2 GB), one per refused line, and nothing pruned ``rejects``.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from scanner_agent.outbox import Outbox, RejectRecord
from scanner_agent.outbox._rejects import reason_kind
from tests.support.outbox import cn20_scans


def junk(
    i: int, *, device: str = "10.0.0.7:5000", at: str = "2026-11-23T10:00:00.000+00:00"
) -> RejectRecord:
    """A refused one-byte line, as the TCP source's intake records it."""
    return RejectRecord(
        raw=chr(33 + i % 90),
        code=chr(33 + i % 90),
        reason=f"not a trace code: {1 + i % 3}-character text",
        verdict="invalid",
        device_id=device,
        source="tcp",
        scanned_at=at,
    )


def table_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM rejects").fetchone()[0])


def test_a_flood_of_refused_lines_is_one_row_per_source_device_and_reason(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.db")
    for start in range(0, 20_000, 4_000):
        box.enqueue_many(
            [],
            [
                junk(i, at=f"2026-11-23T10:{start // 4000:02d}:00.000+00:00")
                for i in range(start, start + 4_000)
            ],
        )
    assert table_rows(tmp_path / "o.db") == 1
    (record,) = box.rejects()
    assert record.count == 20_000
    assert record.scanned_at == "2026-11-23T10:00:00.000+00:00"  # the first
    assert record.last_at == "2026-11-23T10:04:00.000+00:00"  # the last
    assert record.raw == "!"  # one sample, the first one seen
    assert box.stats().rejects == 20_000
    assert sum(box.reject_reasons().values()) == 20_000
    box.close()


def test_refusals_aggregate_per_device_reason_kind_and_hour(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.db")
    box.enqueue_many(
        [],
        [
            junk(0, device="a"),
            junk(1, device="b"),
            junk(2, device="a", at="2026-11-23T11:30:00.000+00:00"),
            RejectRecord(
                "x",
                "x",
                "ma code too short",
                "invalid",
                "a",
                "tcp",
                "2026-11-23T10:00:00.000+00:00",
            ),
        ],
    )
    got = sorted((r.device_id, r.reason, r.count) for r in box.rejects())
    assert got == [
        ("a", "ma code too short", 1),
        ("a", "not a trace code: 1-character text", 1),
        ("a", "not a trace code: 3-character text", 1),
        ("b", "not a trace code: 2-character text", 1),
    ]
    box.close()


def test_duplicate_refusals_stay_per_code_so_a_lookup_finds_them(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.db")
    scans = cn20_scans(0, 3)
    box.enqueue_many(scans)
    for _ in range(5):
        box.enqueue_many(cn20_scans(0, 3))
    refused = box.rejects()
    assert sorted((r.code, r.count) for r in refused) == [(s.code, 5) for s in scans]
    assert {r.reason for r in refused} == {"duplicate scan"}
    box.close()


def test_the_rejects_table_never_grows_past_its_cap(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.db", rejects_max_rows=100)
    for start in range(0, 1_000, 250):
        box.enqueue_many([], [junk(0, device=f"10.0.0.{i}:1") for i in range(start, start + 250)])
    assert table_rows(tmp_path / "o.db") == 100
    kept = box.rejects(limit=1000)
    assert [r.device_id for r in kept] == [f"10.0.0.{i}:1" for i in range(900, 1_000)]  # the newest
    box.close()


def test_prune_rejects_removes_rows_last_seen_before_the_cutoff(tmp_path: Path) -> None:
    box = Outbox.open(tmp_path / "o.db")
    box.enqueue_many([], [junk(0, device="old", at="2026-10-01T10:00:00.000+00:00")])
    box.enqueue_many([], [junk(0, device="kept", at="2026-10-01T10:00:00.000+00:00")])
    box.enqueue_many([], [junk(0, device="kept", at="2026-10-01T10:59:00.000+00:00")])
    box.enqueue_many([], [junk(0, device="new", at="2026-11-20T10:00:00.000+00:00")])
    cutoff = datetime(2026, 10, 1, 10, 30, tzinfo=UTC)
    assert box.prune_rejects(cutoff) == 1
    assert sorted(r.device_id for r in box.rejects()) == ["kept", "new"]
    box.close()


def test_refusals_are_not_written_once_free_space_nears_the_reserve(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    # Between the reserve and twice the reserve: scans still go in, refusals do not.
    box = Outbox.open(tmp_path / "o.db", min_free_bytes=int(free * 0.6))
    box.enqueue_many([], [junk(i) for i in range(100)])
    results = box.enqueue_many(cn20_scans(0, 2), [junk(7)])
    assert len(results) == 2
    assert box.stats().counts["pending"] == 2
    assert table_rows(tmp_path / "o.db") == 0
    assert box.refusals_dropped == 101
    box.close()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_reason_kind_ignores_numbers_and_what_follows_a_colon(reason: str) -> None:
    kind = reason_kind(reason)
    assert not any(c.isdigit() for c in kind if c.isascii())
    assert len(kind) <= 80
    assert kind == reason_kind(kind)


def test_readers_show_counts_old_files_rows_as_one(tmp_path: Path) -> None:
    """A row written before aggregation (no count column value yet) counts as one refusal."""
    box = Outbox.open(tmp_path / "o.db")
    box.enqueue_many([], [junk(0)] * 3)
    with sqlite3.connect(tmp_path / "o.db") as db:
        db.execute(
            "INSERT INTO rejects (raw, code, reason, verdict, device_id, source, scanned_at) "
            "VALUES ('r', 'c', 'old reason', 'invalid', 'd', 's', '2026-01-01T00:00:00+00:00')"
        )
    assert box.stats().rejects == 4
    # Counted under the reason's label, as status and the metrics count them.
    assert box.reject_reasons() == {"not a trace code": 3, "old reason": 1}
    old = next(r for r in box.rejects() if r.reason == "old reason")
    assert (old.count, old.last_at) == (1, "2026-01-01T00:00:00+00:00")
    cutoff = datetime.now(UTC) - timedelta(days=30)
    assert box.prune_rejects(cutoff) >= 1
    box.close()
