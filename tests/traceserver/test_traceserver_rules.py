"""Trace API v1 rules without HTTP: validation, fingerprints, the store, fault hooks, listen addresses."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.traceserver import (
    ACTIONS,
    SCHEMES,
    Faults,
    RequestRefused,
    SchemaMismatch,
    TraceStore,
    create_app,
    fingerprint,
    parse_batch,
)
from scanner_agent.traceserver._protocol import event_problem, is_rfc3339


def event(**fields: str) -> dict[str, str]:
    base = {
        "event_id": str(uuid.uuid4()),
        "code": "81234567890123456789",
        "scheme": "cn20",
        "action": "sale",
        "bill": "",
        "scanned_at": "2025-03-01T09:30:00Z",
        "source": "manual",
    }
    base.update(fields)
    return base


def batch(*events: dict[str, Any], batch_id: str = "b-1") -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "device_id": "d",
        "sent_at": "2025-03-01T09:31:00Z",
        "events": list(events),
    }


def problem_of(**fields: str) -> str | None:
    (row,) = parse_batch(batch(event(**fields)), max_events=10).events
    return event_problem(row, frozenset())


def test_actions_and_schemes_are_the_documented_sets() -> None:
    documented = {
        "receive",
        "ship",
        "return",
        "sale",
        "destroy",
        "transfer",
        "stocktake",
        "produce",
        "purchase",
        "dispense",
    }
    assert documented == ACTIONS
    assert {"cn20", "gs1", "ma"} == SCHEMES


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_documented_action_is_accepted(action: str) -> None:
    assert problem_of(action=action) is None


@pytest.mark.parametrize(
    ("scheme", "code"),
    [
        ("cn20", "80000000000000000000"),
        ("cn20", "89999999999999999999"),
        ("gs1", "(01)06901234567892(21)1"),
        ("gs1", "(01)06901234567892(17)261231(10)LOT/1(21)SN-1"),
        ("ma", "MA."),
        ("ma", "MA.156.M0.100001.0001"),
    ],
)
def test_code_that_fits_its_scheme_is_kept(scheme: str, code: str) -> None:
    assert problem_of(scheme=scheme, code=code) is None


@pytest.mark.parametrize(
    ("scheme", "code"),
    [
        ("cn20", ""),
        ("cn20", "8"),
        ("cn20", "08000000000000000000"),
        ("cn20", " 8000000000000000000"),
        ("cn20", "80000000000000000000\n"),
        ("gs1", "(21)SN1(01)06901234567892"),
        ("gs1", "(01)06901234567892"),
        ("gs1", "(02)06901234567892(21)1"),
        ("ma", "ma.156"),
        ("ma", "MA156"),
        ("ma", "80000000000000000000"),
    ],
)
def test_code_that_does_not_fit_its_scheme_is_rejected(scheme: str, code: str) -> None:
    reason = problem_of(scheme=scheme, code=code)
    assert reason is not None
    assert reason.startswith(f"malformed {scheme} code")


@pytest.mark.parametrize(
    "value",
    [
        "2025-03-01T09:30:00Z",
        "2025-03-01t09:30:00z",
        "2025-03-01T09:30:00.1+08:00",
        "2025-03-01T09:30:00.123456789-05:30",
        "2024-02-29T00:00:00Z",
        "2016-12-31T23:59:60Z",
        "2025-12-31T23:59:59+14:00",
    ],
)
def test_rfc3339_with_offset_is_valid(value: str) -> None:
    assert is_rfc3339(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "2025-03-01T09:30:00",
        "2025-03-01 09:30:00Z",
        "2025-03-01T09:30Z",
        "2025-03-01T09:30:00+0800",
        "2025-03-01T09:30:00+08",
        "2025-03-01T09:30:00.Z",
        "2025-03-01T24:00:00Z",
        "2025-03-01T09:60:00Z",
        "2025-13-01T09:30:00Z",
        "2025-00-01T09:30:00Z",
        "2023-02-29T09:30:00Z",
        "2025-04-31T09:30:00Z",
        "20250301T093000Z",
        "2025-03-01T09:30:00Z ",
        "２０２５-03-01T09:30:00Z",
    ],
)
def test_timestamp_that_is_not_rfc3339_with_offset_is_invalid(value: str) -> None:
    assert not is_rfc3339(value)


def test_rejection_checks_run_in_documented_order() -> None:
    assert problem_of(scheme="qr", action="x", scanned_at="x") == "unknown scheme: qr"
    reason = problem_of(code="1", action="x", scanned_at="x")
    assert reason is not None
    assert reason.startswith("malformed cn20 code")
    assert problem_of(action="x", scanned_at="x") == "unknown action: x"
    row = parse_batch(batch(event(scanned_at="x")), max_events=10).events[0]
    assert event_problem(row, frozenset({row[1]})) == "scanned_at must be RFC 3339 with offset"


def test_fingerprint_ignores_key_order_extra_keys_and_sent_at() -> None:
    e = event()
    original = batch(e)
    reordered = {
        "events": [{**dict(reversed(list(e.items()))), "extra": 1}],
        "sent_at": "later",
        "device_id": "d",
        "batch_id": "b-1",
    }

    assert fingerprint(parse_batch(original, max_events=10)) == fingerprint(
        parse_batch(reordered, max_events=10)
    )


@pytest.mark.parametrize(
    "field", ["event_id", "code", "scheme", "action", "bill", "scanned_at", "source"]
)
def test_fingerprint_changes_when_any_event_field_changes(field: str) -> None:
    e = event()
    changed = {**e, field: e[field] + "x"}

    assert fingerprint(parse_batch(batch(e), max_events=10)) != fingerprint(
        parse_batch(batch(changed), max_events=10)
    )


def test_fingerprint_depends_on_event_order_and_device() -> None:
    a, b = event(), event()
    base = fingerprint(parse_batch(batch(a, b), max_events=10))

    assert fingerprint(parse_batch(batch(b, a), max_events=10)) != base
    assert fingerprint(parse_batch({**batch(a, b), "device_id": "other"}, max_events=10)) != base


def test_parse_batch_reports_the_first_bad_event_by_index() -> None:
    bad: dict[str, Any] = {**event(), "scheme": 1}
    with pytest.raises(RequestRefused) as caught:
        parse_batch(batch(event(), bad), max_events=10)

    assert caught.value.status == 400
    assert caught.value.message == "events[1]: field must be a string: scheme"


# -- store --------------------------------------------------------------------


def ingest(store: TraceStore, body: dict[str, Any], **kwargs: Any) -> tuple[int, Any]:
    status, reply = store.ingest_batch(body["batch_id"], None, body, **kwargs)
    return status, json.loads(reply)


def test_store_uses_wal_and_keeps_data_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "trace.db"
    with TraceStore(path) as store:
        assert ingest(store, batch(event()))[0] == 200
        first = store.batch_reply("b-1")

    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()
    with TraceStore(path) as store:
        assert store.count_events() == 1
        assert store.batch_reply("b-1") == first
        assert store.ingest_batch("b-1", None, batch(*[], batch_id="b-1"))[0] == 422


def test_store_refuses_a_database_from_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "trace.db"
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()

    with pytest.raises(SchemaMismatch, match="schema version 99"):
        TraceStore(path)


def test_store_in_memory_works_for_quick_experiments() -> None:
    with TraceStore(":memory:") as store:
        status, reply = ingest(store, batch(event(), event(code="80000000000000000001")))
        assert status == 200
        assert [r["status"] for r in reply["results"]] == ["accepted", "accepted"]
        events, last = store.events_after(0, 10)
        assert len(events) == 2
        assert last == 2


def test_store_events_after_pages_by_sequence(tmp_path: Path) -> None:
    with TraceStore(tmp_path / "t.db") as store:
        events = [event(code=f"8{i:019d}") for i in range(5)]
        ingest(store, batch(*events))

        page, last = store.events_after(0, 2)
        rest, end = store.events_after(last or 0, 10)
        empty, none = store.events_after(end or 0, 10)
        with pytest.raises(ValueError, match="after"):
            store.events_after(-1, 10)

    assert [e["event_id"] for e in page + rest] == [e["event_id"] for e in events]
    assert (empty, none) == ([], None)


def test_store_caller_may_supply_its_own_body_hash(tmp_path: Path) -> None:
    with TraceStore(tmp_path / "t.db") as store:
        body = batch(event())
        assert store.ingest_batch("b-1", "hash-1", body)[0] == 200
        assert store.ingest_batch("b-1", "hash-1", body)[0] == 200
        assert store.ingest_batch("b-1", "hash-2", body)[0] == 422


def test_store_rolls_back_a_failed_batch_completely(tmp_path: Path) -> None:
    with TraceStore(tmp_path / "t.db") as store:
        # Make every write fail mid-transaction: nothing of the batch may remain.
        store._writer.execute("PRAGMA query_only = ON")
        with pytest.raises(sqlite3.OperationalError):
            store.ingest_batch("b-1", None, batch(event()))
        store._writer.execute("PRAGMA query_only = OFF")

        assert store.count_events() == 0
        assert store.count_batches() == 0
        assert store.ingest_batch("b-1", None, batch(event()))[0] == 200


def test_store_is_safe_to_use_from_many_threads(tmp_path: Path) -> None:
    with TraceStore(tmp_path / "t.db") as store:
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(20):
                    body = batch(event(code=f"8{n:09d}{i:010d}"), batch_id=f"{n}-{i}")
                    assert store.ingest_batch(body["batch_id"], None, body)[0] == 200
                    store.events_after(0, 5)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert errors == []
        assert store.count_events() == 160
        assert store.count_batches() == 160


def test_store_rejects_an_unknown_synchronous_level(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        TraceStore(tmp_path / "t.db", synchronous="SOMETIMES")  # type: ignore[arg-type]


# -- app options --------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"max_body_bytes": 0}, {"max_events": 0}],
)
def test_create_app_refuses_nonsense_limits(tmp_path: Path, options: dict[str, int]) -> None:
    with TraceStore(tmp_path / "t.db") as store, pytest.raises(ValueError, match="must be >= 1"):
        create_app(store, "token", **options)  # type: ignore[arg-type]


def test_create_app_refuses_an_empty_token(tmp_path: Path) -> None:
    with TraceStore(tmp_path / "t.db") as store, pytest.raises(ValueError, match="token"):
        create_app(store, "")


def test_create_app_exposes_its_store_and_faults(tmp_path: Path) -> None:
    faults = Faults()
    with TraceStore(tmp_path / "t.db") as store:
        app = create_app(store, "token", faults=faults)
        assert app.state.store is store
        assert app.state.faults is faults


# -- fault hooks --------------------------------------------------------------


def test_faults_are_served_first_in_first_out() -> None:
    faults = Faults(1)
    faults.throttle(2, retry_after=5)
    faults.fail_next(1, status=500, retry_after=None)

    taken = [faults.take() for _ in range(5)]

    assert taken == [(503, 1), (429, 5), (429, 5), (500, None), None]
    assert faults.injected == 4
    assert faults.pending == 0


def test_faults_clear_disarms_everything() -> None:
    faults = Faults(3)
    faults.clear()

    assert faults.take() is None
    assert faults.pending == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"status": 200}, {"status": 404}, {"retry_after": -1}],
)
def test_faults_refuse_statuses_that_are_not_failures(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Faults().fail_next(1, **kwargs)


def test_faults_can_be_armed_from_other_threads() -> None:
    faults = Faults()
    threads = [threading.Thread(target=faults.unavailable, args=(100,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert faults.pending == 800
