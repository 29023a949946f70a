"""The Trace API v1 client against the real reference service on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from scanner_agent.config import SyncConfig
from scanner_agent.kernel import (
    AuthError,
    BatchRejectedError,
    ProtocolError,
    RateLimitedError,
    TransientSyncError,
    backoff_delay,
)
from scanner_agent.outbox import Batch, BatchEvent, uuid7
from scanner_agent.sinks.trace_api import TraceApiClient, decode_results
from scanner_agent.sync import ServiceError, parse_retry_after
from scanner_agent.traceserver import TraceServerThread

TOKEN = "client-test-token"


def make_batch(*codes: str, bill: str = "B1") -> Batch:
    events = tuple(
        BatchEvent(i, uuid7(), code, "cn20", "ship", bill, "2026-11-23T10:00:00.000+08:00", "test")
        for i, code in enumerate(codes, 1)
    )
    return Batch(uuid7(), events, 0)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TraceServerThread]:
    with TraceServerThread(
        tmp_path / "t.db", TOKEN, reject_codes=frozenset({"89999999999999999999"})
    ) as s:
        yield s


@pytest.fixture
async def client(server: TraceServerThread) -> AsyncIterator[TraceApiClient]:
    c = TraceApiClient(SyncConfig(url=server.url), token=TOKEN, device_id="dock")
    yield c
    await c.aclose()


async def test_batch_results_come_back_per_event(client: TraceApiClient) -> None:
    await client.send_batch(make_batch("80000000000000000001", bill="OLD"))
    batch = make_batch("80000000000000000002", "89999999999999999999")
    results = await client.send_batch(batch)
    first, second = (results[e.event_id] for e in batch.events)
    assert first.status == "accepted"
    assert second.status == "rejected"
    assert second.reason


async def test_same_code_from_another_event_is_a_duplicate(client: TraceApiClient) -> None:
    await client.send_batch(make_batch("80000000000000000003"))
    batch = make_batch("80000000000000000003")
    results = await client.send_batch(batch)
    assert results[batch.events[0].event_id].status == "duplicate"


async def test_resending_a_batch_is_idempotent(
    client: TraceApiClient, server: TraceServerThread
) -> None:
    batch = make_batch("80000000000000000004", "80000000000000000005")
    first = await client.send_batch(batch)
    again = await client.send_batch(batch)
    assert first == again
    assert server.store.count_events() == 2


async def test_bad_token_is_an_auth_error_without_the_token_in_it(
    server: TraceServerThread,
) -> None:
    c = TraceApiClient(SyncConfig(url=server.url), token="wrong-token-value", device_id="dock")
    try:
        with pytest.raises(AuthError) as info:
            await c.send_batch(make_batch("80000000000000000006"))
        assert "wrong-token-value" not in str(info.value)
    finally:
        await c.aclose()


async def test_busy_service_is_rate_limited_with_retry_after(
    client: TraceApiClient, server: TraceServerThread
) -> None:
    server.faults.throttle(1, retry_after=3)
    with pytest.raises(RateLimitedError) as info:
        await client.send_batch(make_batch("80000000000000000007"))
    assert info.value.retry_after == 3.0
    server.faults.unavailable(1, retry_after=None)
    with pytest.raises(TransientSyncError):
        await client.send_batch(make_batch("80000000000000000007"))
    results = await client.send_batch(make_batch("80000000000000000007"))
    assert [r.status for r in results.values()] == ["accepted"]


@pytest.mark.parametrize("status", [502, 504])
async def test_bad_gateway_and_gateway_timeout_are_transient_with_retry_after(
    client: TraceApiClient, server: TraceServerThread, status: int
) -> None:
    # What a reverse proxy in front of the service answers while it restarts or stalls.
    server.faults.fail_next(1, status=status, retry_after=4)
    with pytest.raises(ServiceError) as info:
        await client.send_batch(make_batch("80000000000000000009"))
    assert not isinstance(info.value, RateLimitedError)
    assert info.value.status_code == status
    assert info.value.retry_after == 4.0  # the sync loop waits at least this long
    server.faults.fail_next(1, status=status, retry_after=None)
    with pytest.raises(ServiceError) as info:
        await client.send_batch(make_batch("80000000000000000009"))
    assert info.value.retry_after is None
    results = await client.send_batch(make_batch("80000000000000000009"))
    assert [r.status for r in results.values()] == ["accepted"]
    assert server.store.count_events() == 1


async def test_dead_service_is_a_transient_error() -> None:
    c = TraceApiClient(
        SyncConfig(url="http://127.0.0.1:9", connect_timeout_s=1), token="t", device_id="d"
    )
    try:
        with pytest.raises(TransientSyncError, match="network error"):
            await c.send_batch(make_batch("80000000000000000008"))
    finally:
        await c.aclose()


def reply(batch: Batch, results: list[dict[str, object]], batch_id: str | None = None) -> bytes:
    return json.dumps({"batch_id": batch_id or batch.batch_id, "results": results}).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>502</html>", "as JSON"),
        (b'{"batch_id": "x"}', "no results list"),
        (None, "names batch"),
        ("missing", "have no result"),
        ("unknown", "unknown event"),
        ("status", "status"),
        ("twice", "twice"),
    ],
)
def test_a_reply_that_does_not_match_the_batch_is_a_protocol_error(
    body: bytes | str | None, message: str
) -> None:
    batch = make_batch("80000000000000000001", "80000000000000000002")
    a, b = (e.event_id for e in batch.events)
    ok_a = {"event_id": a, "status": "accepted", "reason": None}
    ok_b = {"event_id": b, "status": "accepted", "reason": None}
    content = {
        None: reply(batch, [ok_a, ok_b], batch_id="other"),
        "missing": reply(batch, [ok_a]),
        "unknown": reply(batch, [ok_a, ok_b, {"event_id": "zzz", "status": "accepted"}]),
        "status": reply(batch, [ok_a, {"event_id": b, "status": "maybe"}]),
        "twice": reply(batch, [ok_a, ok_a]),
    }.get(body, body)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match=message):
        decode_results(batch, content)  # type: ignore[arg-type]


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("garbage") is None


def test_backoff_is_full_jitter_capped_at_the_maximum() -> None:
    import random

    rng = random.Random(1)
    delays = [backoff_delay(n, 0.5, 10.0, rng) for n in range(40)]
    assert all(0 <= d <= 10.0 for d in delays)
    assert max(delays[:1]) <= 0.5
    assert max(delays[10:]) > 2.0


async def test_a_batch_id_reused_for_other_events_is_refused_422_and_stores_nothing(
    client: TraceApiClient, server: TraceServerThread
) -> None:
    batch = make_batch("80000000000000000009")
    await client.send_batch(batch)
    other = Batch(batch.batch_id, make_batch("80000000000000000010").events, 0)
    with pytest.raises(BatchRejectedError) as info:
        await client.send_batch(other)
    assert info.value.status_code == 422
    assert server.store.count_events() == 1
    assert await client.send_batch(batch) == await client.send_batch(batch)  # replay: same reply


def test_a_body_from_the_lease_rendering_matches_the_python_encoding() -> None:
    from scanner_agent.sinks.trace_api import encode_batch

    events = tuple(
        BatchEvent(i, uuid7(), f"8{i:019d}", "cn20", "ship", bill, "2026-03-01T09:30:00+08:00", "t")
        for i, bill in enumerate(['发货单 "A\\1"', "tab\there", "ctl \x1d end", "plain"])
    )
    wire = json.dumps([e.to_wire() for e in events], ensure_ascii=True)  # escaped differently
    plain = json.loads(encode_batch(Batch("b-1", events, 0), "dock-1"))
    rendered = json.loads(encode_batch(Batch("b-1", events, 0, wire), "dock-1"))
    plain.pop("sent_at")
    rendered.pop("sent_at")
    assert rendered == plain
    assert rendered["events"][0]["bill"] == '发货单 "A\\1"'
