"""The 码上放心 sink's encoding on a real outbox: the recorded split, late scans, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from scanner_agent.bills import BillBook
from scanner_agent.outbox import Batch, EventResult, NewScan, Outbox, lease_bill, uuid7
from scanner_agent.sinks.alihealth import AliHealthClient, AliHealthConfig, AliHealthSink


def scan(code: str, bill: str) -> NewScan:
    return NewScan(
        uuid7(), code, "cn20", code, None, "ship", bill, "dock", "test", "2026-11-23T10:00:00+08:00"
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox.open(tmp_path / "outbox.db")
    yield box
    box.close()


def sink(outbox: Outbox, max_codes: int) -> AliHealthSink:
    cfg = AliHealthConfig(app_key="k", secret="s", ref_user_id="r", max_codes=max_codes)
    thread: Any = SimpleNamespace(outbox=outbox)  # encode runs on the outbox thread: no I/O
    return AliHealthSink(thread, AliHealthClient(cfg), ent_id="ent-self")


def lease(outbox: Outbox) -> Batch:
    batch = lease_bill(outbox, lease_s=60, other_limit=100)
    assert batch is not None
    return batch


CODES = [f"8{i:019d}" for i in (7, 3, 5, 1, 6, 2, 4)]


def test_a_requeued_part_keeps_its_sub_bill_number_and_late_scans_are_refused(
    outbox: Outbox,
) -> None:
    book = BillBook(outbox)
    book.open("SO", 201, device_id="dock", to_party="ent-customer")
    outbox.enqueue_many([scan(c, "SO") for c in CODES])
    book.close("SO")
    first = lease(outbox)
    payload = sink(outbox, 3).encode(first)
    parts = {u.bill_code: u.codes for u, _ids in payload.uploads}
    assert parts == {
        "SO-1": tuple(sorted(CODES)[:3]),
        "SO-2": tuple(sorted(CODES)[3:6]),
        "SO-3": tuple(sorted(CODES)[6:]),
    }
    upload = payload.uploads[0][0]
    assert (upload.bill_type, upload.from_user_id, upload.to_user_id) == (
        201,
        "ent-self",
        "ent-customer",
    )
    assert payload.refused == {}

    # SO-2 was refused by the platform; the operator sends just those scans again,
    # after max_codes was changed: the recorded plan still calls them SO-2.
    outbox.dead_letter_batch(first.batch_id, "FAIL")
    seqs = [e.seq for e in first.events if e.code in parts["SO-2"]]
    assert outbox.requeue_rejected(seqs) == 3
    second = lease(outbox)
    again = sink(outbox, 2).encode(second)
    assert [(u.bill_code, u.codes) for u, _ids in again.uploads] == [("SO-2", parts["SO-2"])]
    assert sorted(again.uploads[0][1]) == sorted(e.event_id for e in second.events)

    # A scan that reaches the bill after its upload began cannot go under its number.
    late = scan("80000000000000000009", "SO")
    outbox.enqueue_many([late])
    assert lease_bill(outbox, lease_s=60, other_limit=100) is None  # SO-2 is in flight
    outbox.settle(second.batch_id, {e.event_id: EventResult("accepted") for e in second.events})
    third = lease(outbox)
    assert [e.event_id for e in third.events] == [late.event_id]
    refused = sink(outbox, 3).encode(third)
    assert refused.uploads == ()
    assert "after its upload to 码上放心 began" in refused.refused[late.event_id]
    assert [h["event"] for h in book.history("SO")].count("upload-plan") == 1


def test_scans_of_a_bill_without_its_partner_are_refused_with_the_reason(
    outbox: Outbox,
) -> None:
    book = BillBook(outbox)
    book.open("PO", 102, device_id="dock")  # inbound: the supplier's ent_id is missing
    outbox.enqueue_many([scan(c, "PO") for c in CODES[:2]])
    book.close("PO")
    payload = sink(outbox, 3).encode(lease(outbox))
    assert payload.uploads == ()
    assert {why for why in payload.refused.values()} == {
        "bill lacks a party: PO has no from party (the partner's 码上放心 ent_id); 码上放心 "
        "needs from and to (set alihealth.ent_id for this enterprise's side)"
    }


def test_processing_failures_are_the_latest_state_of_each_sub_bill_until_acknowledged(
    outbox: Outbox,
) -> None:
    from scanner_agent.sinks.alihealth import (
        STATUS_EVENT,
        acknowledge_failures,
        append_log,
        platform_failures,
        status_detail,
    )

    append_log(
        outbox,
        [
            ("BIG", STATUS_EVENT, status_detail("BIG-1", "4", "码不存在")),
            ("BIG", STATUS_EVENT, status_detail("BIG-2", "4", "码已销售")),
            ("BIG", STATUS_EVENT, status_detail("BIG-1", "3", "")),  # processed on a later query
            ("OK", STATUS_EVENT, status_detail("OK", "3", "")),
            ("ODD", STATUS_EVENT, "ODD: no final deal_status after 10 queries"),
            ("LATE", STATUS_EVENT, status_detail("LATE", "4", "企业未激活")),
        ],
    )
    found = platform_failures(outbox)
    assert [(f.bill, f.number) for f in found] == [("BIG", "BIG-2"), ("LATE", "LATE")]
    assert found[0].detail == "BIG-2: deal_status 4 (processing failed) 码已销售"
    assert acknowledge_failures(outbox, "OK", "nothing to do") == []
    cleared = acknowledge_failures(outbox, "BIG", "re-uploaded as BIG-R")
    assert [f.number for f in cleared] == ["BIG-2"]
    assert [f.bill for f in platform_failures(outbox)] == ["LATE"]
    history = BillBook(outbox).history("BIG")
    assert history[-1]["event"] == "platform-ack"
    assert history[-1]["detail"] == "BIG-2: re-uploaded as BIG-R"
    # A failure recorded after the acknowledgement raises the alarm again.
    append_log(outbox, [("BIG", STATUS_EVENT, status_detail("BIG-2", "4", "again"))])
    assert [(f.bill, f.number) for f in platform_failures(outbox, "BIG")] == [("BIG", "BIG-2")]
