"""Leasing by bill on a real outbox file: one whole closed bill per batch, settled as usual."""

from __future__ import annotations

from scanner_agent.bills import BillBook
from scanner_agent.outbox import Batch, EventResult, NewScan, Outbox, RowState, lease_bill
from tests.support.outbox import new_scan


def scan(code: str, bill: str) -> NewScan:
    return new_scan(code, bill=bill)


def cn20(n: int, start: int = 0) -> list[str]:
    return [f"8{i:019d}" for i in range(start, start + n)]


def fill(
    outbox: Outbox, bill: str, codes: list[str], *, close: bool = True, device: str = "dock"
) -> None:
    book = BillBook(outbox)
    book.open(bill, 201, device_id=device)
    outbox.enqueue_many([scan(c, bill) for c in codes])
    if close:
        book.close(bill)


def test_a_batch_is_one_whole_closed_bill_and_open_bills_are_held(outbox: Outbox) -> None:
    fill(outbox, "OPEN", cn20(3, 900), close=False, device="other-dock")
    fill(outbox, "A", cn20(120))
    fill(outbox, "B", cn20(5, 500))
    first = lease_bill(outbox, lease_s=60, other_limit=10)
    assert first is not None
    assert {e.bill for e in first.events} == {"A"}
    assert len(first.events) == 120  # other_limit bounds default bills only
    second = lease_bill(outbox, lease_s=60, other_limit=10)
    assert second is not None
    assert {e.bill for e in second.events} == {"B"}
    assert lease_bill(outbox, lease_s=60, other_limit=10) is None  # OPEN stays held
    summary = outbox.settle(
        first.batch_id, {e.event_id: EventResult("accepted") for e in first.events}
    )
    assert summary.accepted == 120
    states = {r.bill: r.state for r in outbox.rows(limit=1000)}
    assert states == {"OPEN": "held", "A": "delivered", "B": "in_flight"}


def test_a_bill_in_flight_is_not_leased_twice_and_an_expired_lease_returns_unchanged(
    outbox: Outbox,
) -> None:
    fill(outbox, "A", cn20(4))
    batch = lease_bill(outbox, lease_s=60, other_limit=10)
    assert batch is not None
    # Dead letters of the same bill sent again meanwhile wait for the batch in flight.
    outbox.dead_letter_batch(batch.batch_id, "refused")
    outbox.requeue_rejected()
    again = lease_bill(outbox, lease_s=60, other_limit=10)
    assert again is not None
    assert lease_bill(outbox, lease_s=60, other_limit=10) is None
    outbox.release(again.batch_id, "network")
    back = lease_bill(outbox, lease_s=60, other_limit=10)
    assert back is not None
    assert (back.batch_id, back.events, back.attempts) == (again.batch_id, again.events, 1)


def test_default_bills_are_bounded_and_mixed_batches_are_dissolved_by_bill(
    outbox: Outbox,
) -> None:
    outbox.enqueue_many([scan(c, "dock-ship") for c in cn20(25)])
    fill(outbox, "A", cn20(3, 100))
    mixed = outbox.lease(1000, lease_s=60)  # the other lease, before a protocol switch
    assert mixed is not None
    assert {e.bill for e in mixed.events} == {"dock-ship", "A"}
    outbox.release(mixed.batch_id, "agent stopping")
    first = lease_bill(outbox, lease_s=60, other_limit=10)
    assert first is not None
    assert first.batch_id != mixed.batch_id
    assert [e.code for e in first.events] == cn20(10)
    # One batch of a bill at a time, default bills too: A goes next, then the rest in turn.
    second = lease_bill(outbox, lease_s=60, other_limit=10)
    assert second is not None
    assert [e.bill for e in second.events] == ["A"] * 3
    assert lease_bill(outbox, lease_s=60, other_limit=10) is None
    sizes = []
    batch: Batch | None = first
    while batch is not None:
        sizes.append(len(batch.events))
        outbox.dead_letter_batch(batch.batch_id, "not a bill")
        batch = lease_bill(outbox, lease_s=60, other_limit=10)
    assert sizes == [10, 10, 5]
    assert {r.state for r in outbox.rows(limit=100) if r.bill == "dock-ship"} == {
        RowState.REJECTED.value
    }


def test_part_of_a_bill_leased_before_a_protocol_switch_goes_again_as_the_whole_bill(
    outbox: Outbox,
) -> None:
    fill(outbox, "SO-1", cn20(5))
    partial = outbox.lease(2)  # trace-api took two of its scans, then the agent restarted
    assert partial is not None
    outbox.release(partial.batch_id, "agent stopping")
    whole = lease_bill(outbox, lease_s=60, other_limit=10)
    assert whole is not None
    assert whole.batch_id != partial.batch_id
    assert [e.code for e in whole.events] == cn20(5)
    assert lease_bill(outbox, lease_s=60, other_limit=10) is None


def test_an_expired_batch_of_a_whole_bill_goes_again_unchanged(outbox: Outbox) -> None:
    fill(outbox, "SO-2", cn20(4))
    first = lease_bill(outbox, lease_s=60, other_limit=10)
    assert first is not None
    outbox.release(first.batch_id, "network down")
    again = lease_bill(outbox, lease_s=60, other_limit=10)
    assert again is not None
    assert again.batch_id == first.batch_id
    assert again.events == first.events
