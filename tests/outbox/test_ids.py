"""UUIDv7 event ids: format, order and uniqueness, one at a time and in bulk."""

from __future__ import annotations

import re
import time
import uuid

from scanner_agent.outbox._ids import uuid7, uuid7_many

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _ms(event_id: str) -> int:
    return int(event_id.replace("-", "")[:12], 16)


def test_ids_are_rfc_9562_version_7() -> None:
    before = time.time_ns() // 1_000_000
    ids = [uuid7(), *uuid7_many(50)]
    after = time.time_ns() // 1_000_000
    for event_id in ids:
        assert UUID_RE.match(event_id), event_id
        parsed = uuid.UUID(event_id)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == event_id
    # The counter may borrow a millisecond or two ahead, never fall behind the clock.
    assert before <= _ms(ids[0])
    assert _ms(ids[-1]) <= after + 2


def test_single_and_bulk_ids_share_one_increasing_sequence() -> None:
    ids: list[str] = []
    for k in range(200):
        ids += uuid7_many(k % 7) if k % 3 else [uuid7()]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_counter_overflow_borrows_the_next_millisecond() -> None:
    # More ids than the 12-bit counter holds in one millisecond, in one call.
    ids = uuid7_many(10_000)
    assert ids == sorted(ids)
    assert len(set(ids)) == 10_000
    assert _ms(ids[-1]) > _ms(ids[0])


def test_ids_stay_ordered_when_the_clock_steps_back() -> None:
    first = uuid7_many(3)
    real = time.time_ns()

    def an_hour_back() -> int:
        return real - 3_600 * 10**9

    later = [*uuid7_many(3, an_hour_back), uuid7(an_hour_back)]
    assert first + later == sorted(first + later)
    assert len(set(first + later)) == 7


def test_zero_ids() -> None:
    assert uuid7_many(0) == []


def test_random_bits_differ_between_ids() -> None:
    tails = {event_id[-12:] for event_id in uuid7_many(1000)}
    assert len(tails) == 1000
