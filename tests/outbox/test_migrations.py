"""Upgrading an outbox written by an older build: rows and leases in flight carry over."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.kernel import OutboxCorruptError, OutboxError
from scanner_agent.outbox import (
    SCHEMA_VERSION,
    EnqueueStatus,
    EventResult,
    NewScan,
    Outbox,
    RejectRecord,
    _connect,
    uuid7,
)
from scanner_agent.outbox._checksum import CHECKED_FIELDS, text_checksum
from scanner_agent.outbox._schema import MIGRATIONS
from tests.support.outbox import insert_checked, outbox_at_schema


def _v3_file(path: Path) -> tuple[list[str], str]:
    """An outbox at schema 3 with two scans in flight in one batch and one pending."""
    db = outbox_at_schema(path, 3)
    ids = [uuid7() for _ in range(3)]
    for i, event_id in enumerate(ids):
        code = f"8{i:019d}"
        db.execute(
            f"INSERT INTO scans ({', '.join(NewScan._fields)}) VALUES "
            f"({', '.join('?' * len(NewScan._fields))})",
            (event_id, code, "cn20", code, None, "ship", "B1", "dock", "t", "2026-01-01T00:00:00Z")
            + (None,) * 5,
        )
    db.execute(
        "INSERT INTO batches (batch_id, created_at, lease_until, events) "
        "VALUES ('old-batch', '2026-01-01', 0, 2)"
    )
    db.execute("UPDATE scans SET state = 'in_flight', batch_id = 'old-batch' WHERE seq IN (2, 3)")
    # Schema 3 refused duplicates through a text key; seq 3 was taken with the check off.
    db.execute("UPDATE scans SET dup_key = code || char(31) || bill || char(31) || action")
    db.execute("UPDATE scans SET dup_key = NULL WHERE seq = 3")
    db.close()
    return ids, "old-batch"


def test_a_schema_3_file_keeps_its_lease_across_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    ids, batch_id = _v3_file(path)
    with Outbox.open(path) as box:
        assert box.stats().schema_version == SCHEMA_VERSION
        assert box.stats().counts["in_flight"] == 2
        # The expired lease comes back first, same id, same rows.
        again = box.lease(10)
        assert again is not None
        assert again.batch_id == batch_id
        assert [e.event_id for e in again.events] == ids[1:]
        summary = box.settle(batch_id, {i: EventResult("accepted") for i in ids[1:]})
        assert summary.accepted == 2
        nxt = box.lease(10)
        assert nxt is not None
        assert [e.event_id for e in nxt.events] == ids[:1]
        assert box.stats().counts == {
            "pending": 0,
            "held": 0,
            "in_flight": 1,
            "delivered": 2,
            "rejected": 0,
            "removed": 0,
            "quarantined": 0,
        }
    db = sqlite3.connect(path)
    indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    db.close()
    assert "scans_in_flight" not in indexes


def test_the_duplicate_check_carries_over_to_the_identity_index(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    _v3_file(path)

    def again(i: int) -> NewScan:
        code = f"8{i:019d}"
        return NewScan(uuid7(), code, "cn20", code, None, "ship", "B1", "dock", "t", "2026-01-02")

    with Outbox.open(path) as box:
        first, third, other_bill = box.enqueue_many(
            [again(0), again(2), again(0)._replace(event_id=uuid7(), bill="B2")]
        )
    assert first.status is EnqueueStatus.DUPLICATE
    assert first.seq == 1
    assert third.status is EnqueueStatus.QUEUED  # its old row was taken with the check off
    assert other_bill.status is EnqueueStatus.QUEUED
    db = sqlite3.connect(path)
    columns = {r[1] for r in db.execute("PRAGMA table_info(scans)")}
    plan = " ".join(
        str(r[-1])
        for r in db.execute("EXPLAIN QUERY PLAN SELECT seq FROM scans WHERE code = ?", ("x",))
    )
    db.close()
    assert "dup_key" not in columns
    assert "scans_identity" in plan


_EVERY_VALUE_BUT_ATTEMPTS = (
    "SELECT seq, event_id, code, scheme, raw, symbology, product, gtin, batch_no, expiry, serial, "
    "action, bill, device_id, source, scanned_at, state, batch_id, result, reason, settled_at, "
    "removed, dup_guard FROM scans ORDER BY seq"
)


def test_the_state_rules_are_restated_without_in_lists_and_still_hold(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    ids, batch_id = _v3_file(path)
    db = sqlite3.connect(path, isolation_level=None)
    for version, name, fn in MIGRATIONS:  # up to schema 5, as the last build left it
        if 3 < version <= 5:
            db.execute("BEGIN")
            fn(db)
            db.execute("INSERT INTO _migrations VALUES (?, ?, '2026-01-01')", (version, name))
            db.execute("COMMIT")
    db.execute("UPDATE scans SET state = 'delivered', result = 'duplicate' WHERE seq = 1")
    before = db.execute(_EVERY_VALUE_BUT_ATTEMPTS).fetchall()
    (old_sql,) = db.execute("SELECT sql FROM sqlite_schema WHERE name = 'scans'").fetchone()
    db.close()
    assert "state IN (" in old_sql

    with Outbox.open(path) as box:
        assert box.stats().schema_version == SCHEMA_VERSION
        again = box.lease(10)
        assert again is not None
        assert again.batch_id == batch_id
    db = sqlite3.connect(path, isolation_level=None)
    (sql,) = db.execute("SELECT sql FROM sqlite_schema WHERE name = 'scans'").fetchone()
    after = db.execute(_EVERY_VALUE_BUT_ATTEMPTS).fetchall()
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert " IN (" not in sql
    assert "state = 'pending' OR state = 'in_flight'" in sql
    for bad in ("state = 'lost'", "result = 'maybe'"):
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            db.execute(f"UPDATE scans SET {bad} WHERE seq = 1")
    db.close()
    assert after == before  # apart from the lease's attempt count, every value is as it was
    assert len(after) == len(ids)


def test_a_locked_file_is_an_error_and_never_moved_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "outbox.db"
    Outbox.open(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(_connect, "BUSY_TIMEOUT_S", 0.2)
    connects: list[object] = []
    connect = sqlite3.connect

    def counting_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connects.append(args[0])
        return connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", counting_connect)
    try:
        with pytest.raises(OutboxError, match="locked") as caught:
            Outbox.open(path)
        assert not isinstance(caught.value, OutboxCorruptError)
        assert len(connects) == 1  # the lock is waited out once, not again by the writer
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert sorted(p.name for p in tmp_path.iterdir() if "corrupt" in p.name) == []
    with Outbox.open(path) as box:  # and it opens once the other process lets go
        assert box.alarms == []


def test_rows_owed_get_their_checksum_at_the_upgrade_and_a_damaged_one_does_not_stop_it(
    tmp_path: Path,
) -> None:
    from scanner_agent.outbox._checksum import text_checksum

    path = tmp_path / "o.db"
    _v3_file(path)
    with sqlite3.connect(path) as db:
        # seq 1 pending with a code that is not UTF-8 (a damaged byte, as read from disk).
        db.execute("UPDATE scans SET code = CAST(X'3830FF' AS TEXT) WHERE seq = 1")
    with Outbox.open(path) as box:
        assert box.stats().schema_version == SCHEMA_VERSION
        batch = box.lease(10)  # the old batch (seq 2, 3), verified
        assert batch is not None
        assert [e.seq for e in batch.events] == [2, 3]
        assert box.lease(10) is None  # seq 1 quarantined, not sent
        assert [q.seq for q in box.quarantined()] == [1]
    with sqlite3.connect(path) as db:
        db.text_factory = bytes
        rows = db.execute(f"SELECT seq, crc, {', '.join(NewScan._fields)} FROM scans").fetchall()
    sums = {r[0]: r[1] for r in rows}
    assert sums[1] is None
    for _seq, crc, *fields in rows[1:]:
        assert crc == text_checksum([f.decode() if f is not None else None for f in fields])


def test_codes_listed_by_migration_9_are_re_derived_once_with_their_checksum(
    tmp_path: Path,
) -> None:
    # Three GS1 rows at schema 8: one to re-derive, one damaged since (its checksum no longer
    # matches: left for the quarantine), and one whose new code a later row already holds.
    path = tmp_path / "o.db"
    db = outbox_at_schema(path, 8)
    scans = [
        NewScan(
            uuid7(),
            f"(01)09506000134352(21)S{i}(9)",
            "gs1",
            f"]d2010950600013435221S{i}(9)",
            "]d2",
            "ship",
            "B1",
            "dock",
            "t",
            "2026-01-01T00:00:00Z",
        )
        for i in range(3)
    ]
    insert_checked(db, scans)
    db.execute("UPDATE scans SET source = 'damaged' WHERE seq = 2")
    db.close()
    taken = "(01)09506000134352(21)S2\\(9)"
    with Outbox.open(path) as box:
        box.enqueue_many([scans[2]._replace(event_id=uuid7(), code=taken, raw="again")])
        assert (
            box.recode_legacy(
                lambda raw: (
                    raw.replace("]d201", "(01)").replace("21S", "(21)S").replace("(9", "\\(9")
                )
            )
            == 1
        )
        assert box.recode_legacy(lambda raw: "never asked") == 0
    db = sqlite3.connect(path)
    rows = db.execute(f"SELECT seq, code, crc, {', '.join(NewScan._fields)} FROM scans").fetchall()
    db.close()
    codes = [code for _seq, code, *_ in rows]
    assert codes == ["(01)09506000134352(21)S0\\(9)", scans[1].code, scans[2].code, taken]
    for _seq, _code, crc, *values in rows:
        assert crc == text_checksum(values) or values[CHECKED_FIELDS.index("source")] == "damaged"


def test_refusals_of_codes_an_earlier_version_stored_are_re_derived_and_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At schema 8 (an agent before issue 15's code form), refusal aggregates of GS1 codes in
    # the old form: lookup by today's code, and the status' last refusal, must find them.
    from scanner_agent.outbox import _recode
    from scanner_agent.outbox._rejects import _key

    path = tmp_path / "o.db"
    db = outbox_at_schema(path, 8)
    gtin = "09506000134352"
    new = {  # raw -> the code it gets today
        f"]d201{gtin}21A(9)": f"(01){gtin}(21)A\\(9)",
        f"]d201{gtin}21B(9)": f"(01){gtin}(21)B\\(9)",
        f"]d201{gtin}21C(9)": f"(01){gtin}(21)C\\(9)",
    }
    a, b, c = new

    def put(
        raw: str, code: str, verdict: str, at: str, count: int, last: str | None, keyed: bool
    ) -> None:
        rec = RejectRecord(raw, code, "duplicate scan", verdict, "dock", "tcp:old", at)
        db.execute(
            "INSERT INTO rejects (raw, code, reason, verdict, device_id, source, scanned_at, "
            "count, last_at, agg_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                raw,
                code,
                rec.reason,
                verdict,
                "dock",
                "tcp:old",
                at,
                count,
                last,
                _key(rec) if keyed else None,
            ),
        )

    old_a, old_b = f"(01){gtin}(21)A(9)", f"(01){gtin}(21)B(9)"
    # 1: an aggregate of duplicates of A, in the old form.
    put(a, old_a, "duplicate", "2026-01-01T10:05:00.000", 3, "2026-01-01T10:40:00.000", True)
    # 2: B in the old form and 3: B as the same hour's later refusals stored it in the new
    # form (the same key once re-derived): one aggregate of 2 + 4, first and last times kept.
    put(b, old_b, "duplicate", "2026-01-01T11:10:00.000", 2, "2026-01-01T11:20:00.000", True)
    put(b, new[b], "duplicate", "2026-01-01T11:30:00.000", 4, "2026-01-01T11:50:00.000", True)
    # 4: a row from before aggregation (no key), 5: a raw scan that is no longer GS1 today.
    put(c, f"(01){gtin}(21)C(9)", "duplicate", "2026-01-01T09:00:00.000", 1, None, False)
    put("(junk", "(junk", "invalid", "2026-01-01T12:00:00.000", 1, "2026-01-01T12:00:00.000", True)
    db.close()
    monkeypatch.setattr(_recode, "_REFUSALS_PER_STEP", 2)  # the list is worked in steps
    with Outbox.open(path) as box:
        assert box.recode_legacy(new.get) == 3
        assert box.recode_legacy(lambda raw: "never asked") == 0
        with box.bills() as store:
            found = {code: store.code_refusals(code, 10) for code in new.values()}
            assert store.code_refusals(old_a, 10) == []
        assert [(r["count"], r["scanned_at"], r["last_at"]) for r in found[new[a]]] == [
            (3, "2026-01-01T10:05:00.000", "2026-01-01T10:40:00.000")
        ]
        assert [(r["count"], r["scanned_at"], r["last_at"]) for r in found[new[b]]] == [
            (6, "2026-01-01T11:10:00.000", "2026-01-01T11:50:00.000")
        ]
        assert [r["count"] for r in found[new[c]]] == [1]
        rows = {(r.raw, r.code) for r in box.rejects()}
        assert rows == {(a, new[a]), (b, new[b]), (c, new[c]), ("(junk", "(junk")}, "raw kept"
        # A later duplicate of B in the same hour adds to the one aggregate.
        with sqlite3.connect(path) as db:
            keys = dict(db.execute("SELECT code, agg_key FROM rejects").fetchall())
        assert keys[new[b]] == _key(
            RejectRecord(
                b,
                new[b],
                "duplicate scan",
                "duplicate",
                "dock",
                "tcp:old",
                "2026-01-01T11:10:00.000",
            )
        )
        assert keys[new[c]] is None


def test_a_file_a_newer_agent_migrated_is_refused_untouched_even_from_the_wal(
    tmp_path: Path,
) -> None:
    # A downgraded box: the newer agent's migration may still sit in the WAL (a crash before
    # its checkpoint), where the header check of the path cannot see it; the open must.
    path = tmp_path / "o.db"
    Outbox.open(path).close()
    keeper = sqlite3.connect(path)  # a second connection: closing the writer keeps the WAL
    keeper.execute("SELECT 1 FROM _migrations").fetchall()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute(f"INSERT INTO _migrations VALUES ({SCHEMA_VERSION + 1}, 'later', '2030-01-01')")
    writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    writer.close()
    try:
        assert int.from_bytes(path.read_bytes()[60:64], "big") == SCHEMA_VERSION  # header: old
        with pytest.raises(OutboxError, match="written by a newer scanner-agent"):
            Outbox.open(path)
        (newest,) = keeper.execute("SELECT MAX(version) FROM _migrations").fetchone()
        assert newest == SCHEMA_VERSION + 1
    finally:
        keeper.close()
    with pytest.raises(OutboxError, match=rf"schema v{SCHEMA_VERSION + 1}, written by a newer"):
        Outbox.open(path)  # checkpointed now: the path check finds it in the header
