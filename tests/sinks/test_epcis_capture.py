"""The EPCIS 2.0 capture client against the emulated repository on loopback (real HTTP)."""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scanner_agent.kernel import (
    AuthError,
    BatchRejectedError,
    BatchTooLargeError,
    ProtocolError,
    RateLimitedError,
    TransientSyncError,
)
from scanner_agent.lab.epcis_emulator import EpcisEmulator
from scanner_agent.outbox import Batch, BatchEvent
from scanner_agent.sinks.epcis import (
    EpcisCaptureClient,
    EpcisCaptureConfig,
    EpcisConfig,
    object_event,
)
from scanner_agent.sync import NetworkError, ServiceError
from tests.sinks.epcis_schema import needs_schema, validate

DOC = EpcisConfig(
    read_point="urn:epc:id:sgln:0614141.00777.0", biz_location="urn:epc:id:sgln:0614141.00888.0"
)
TOKEN = "epcis-s3cret-token"


def scans(n: int, start: int = 0, action: str = "ship") -> list[BatchEvent]:
    return [
        BatchEvent(
            seq=i + 1,
            event_id=f"ev-{i}",
            code=f"8{i:019d}",
            scheme="cn20",
            action=action,
            bill="SO-1",
            scanned_at=f"2026-11-23T10:15:{i % 60:02d}.000+08:00",
            source="test",
        )
        for i in range(start, start + n)
    ]


def config(url: str, **kw: Any) -> EpcisCaptureConfig:
    base: dict[str, Any] = {
        "url": url,
        "document": DOC,
        "poll_initial_s": 0.01,
        "poll_max_s": 0.05,
        "poll_timeout_s": 5.0,
    }
    base.update(kw)
    return EpcisCaptureConfig(**base)


@pytest.fixture
def repo() -> Iterator[EpcisEmulator]:
    with EpcisEmulator(token=TOKEN, running_polls=2) as r:
        yield r


@pytest.fixture
async def client(repo: EpcisEmulator) -> AsyncIterator[EpcisCaptureClient]:
    c = EpcisCaptureClient(config(repo.url), token=TOKEN)
    yield c
    await c.aclose()


def statuses(results: dict[str, Any]) -> dict[str, str]:
    return {k: v.status for k, v in results.items()}


async def test_events_are_captured_after_polling_the_job(
    repo: EpcisEmulator, client: EpcisCaptureClient
) -> None:
    events = scans(5)
    results = await client.send_events(events)
    assert statuses(results) == {e.event_id: "accepted" for e in events}
    stored = repo.state.events
    assert set(stored) == {object_event(e, DOC)["eventID"] for e in events}
    assert repo.state.captures == 1
    assert repo.state.polls == 3  # two answers "running", then the final job


async def test_a_resend_is_reported_duplicate_and_counts_as_delivered(
    repo: EpcisEmulator, client: EpcisCaptureClient
) -> None:
    events = scans(3)
    await client.send_events(events)
    again = await client.send_events([*events, *scans(2, start=3)])
    assert statuses(again) == {
        "ev-0": "duplicate",
        "ev-1": "duplicate",
        "ev-2": "duplicate",
        "ev-3": "accepted",
        "ev-4": "accepted",
    }
    assert "Duplicate event" in (again["ev-0"].reason or "")
    assert len(repo.state.events) == 5


async def test_rollback_captures_the_rest_again_without_the_duplicates(
    repo: EpcisEmulator,
) -> None:
    client = EpcisCaptureClient(config(repo.url, error_behaviour="rollback"), token=TOKEN)
    try:
        await client.send_events(scans(2))
        results = await client.send_events(scans(4))
    finally:
        await client.aclose()
    assert statuses(results) == {
        "ev-0": "duplicate",
        "ev-1": "duplicate",
        "ev-2": "accepted",
        "ev-3": "accepted",
    }
    # first document, the rolled-back one, then the two new events on their own
    assert repo.state.captures == 3
    assert len(repo.state.events) == 4


async def test_invalid_events_are_rejected_with_the_repository_reason(
    repo: EpcisEmulator, client: EpcisCaptureClient
) -> None:
    events = [object_event(e, DOC) for e in scans(3)]
    del events[1]["eventTimeZoneOffset"]
    outcome = await client.capture(events)
    by_id = {e["eventID"]: outcome.results[e["eventID"]] for e in events}
    assert [r.status for r in by_id.values()] == ["accepted", "rejected", "accepted"]
    assert "missing eventTimeZoneOffset" in (by_id[events[1]["eventID"]].reason or "")
    assert set(repo.state.events) == {events[0]["eventID"], events[2]["eventID"]}
    assert outcome.resend == ()


async def test_a_scan_that_is_not_an_epcis_event_is_rejected_without_sending(
    repo: EpcisEmulator, client: EpcisCaptureClient
) -> None:
    ma = BatchEvent(
        seq=9,
        event_id="ev-ma",
        code="MA.156.M0.100001.1234",
        scheme="ma",
        action="ship",
        bill="SO-1",
        scanned_at="2026-11-23T10:15:00+08:00",
        source="t",
    )
    results = await client.send_events([ma, *scans(1)])
    assert results["ev-ma"].status == "rejected"
    assert "unknown code scheme" in (results["ev-ma"].reason or "")
    assert results["ev-0"].status == "accepted"
    assert len(repo.state.events) == 1


async def test_rate_limit_raises_with_retry_after_and_stores_nothing(
    repo: EpcisEmulator, client: EpcisCaptureClient
) -> None:
    repo.state.rate_limit_next = 1
    repo.state.retry_after = 7
    with pytest.raises(RateLimitedError) as err:
        await client.send_events(scans(2))
    assert err.value.retry_after == 7.0
    assert repo.state.events == {}
    results = await client.send_events(scans(2))
    assert set(statuses(results).values()) == {"accepted"}


async def test_server_error_is_transient(repo: EpcisEmulator, client: EpcisCaptureClient) -> None:
    repo.state.fail_next = 1
    with pytest.raises(ServiceError) as err:
        await client.send_events(scans(2))
    assert err.value.status_code == 500
    assert isinstance(err.value, TransientSyncError)
    assert repo.state.events == {}


async def test_a_missing_or_wrong_token_is_an_auth_error_and_never_shown(
    repo: EpcisEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-value"
    for token in ("", wrong):
        client = EpcisCaptureClient(config(repo.url), token=token)
        try:
            with pytest.raises(AuthError) as err:
                await client.send_events(scans(1))
        finally:
            await client.aclose()
        assert "401" in str(err.value)
        assert wrong not in str(err.value)
    client = EpcisCaptureClient(config(repo.url), token=wrong)
    assert client.set_token(TOKEN)
    try:
        assert (await client.send_events(scans(1)))["ev-0"].status == "accepted"
    finally:
        await client.aclose()
    assert TOKEN not in repr(client)
    assert TOKEN not in caplog.text
    assert wrong not in caplog.text


async def test_a_lost_reply_then_resend_delivers_each_event_exactly_once(
    repo: EpcisEmulator, client: EpcisCaptureClient
) -> None:
    events = scans(4)
    repo.state.drop_next = 1
    with pytest.raises(NetworkError):
        await client.send_events(events)
    assert len(repo.state.events) == 4  # stored before the reply was lost
    results = await client.send_events(events)
    assert set(statuses(results).values()) == {"duplicate"}
    assert len(repo.state.events) == 4
    assert sorted(repo.state.events) == sorted(object_event(e, DOC)["eventID"] for e in events)


async def test_a_job_that_never_finishes_times_out_as_transient(repo: EpcisEmulator) -> None:
    repo.state.running_polls = 10_000
    client = EpcisCaptureClient(config(repo.url, poll_timeout_s=0.2), token=TOKEN)
    try:
        with pytest.raises(TransientSyncError, match="no final answer within"):
            await client.send_events(scans(1))
    finally:
        await client.aclose()
    assert 3 <= repo.state.polls < 40  # backed off: neither one poll nor a busy loop


async def test_send_batch_has_the_sync_loops_shape(
    repo: EpcisEmulator, client: EpcisCaptureClient
) -> None:
    batch = Batch(batch_id="b1", events=tuple(scans(2)), attempts=0)
    assert statuses(await client.send_batch(batch)) == {"ev-0": "accepted", "ev-1": "accepted"}


def _mock(status: int, **kw: Any) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(status, **kw)
        return httpx.Response(404, json={"title": "no such job"})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("status", "kw", "error"),
    [
        (413, {"json": {"title": "Capture limit exceeded"}}, BatchTooLargeError),
        (403, {}, AuthError),
        (415, {"text": "unsupported"}, BatchRejectedError),
        (503, {"headers": {"Retry-After": "3"}}, RateLimitedError),
        (502, {}, ServiceError),
        (200, {}, ProtocolError),
        (202, {}, ProtocolError),  # no Location
        (202, {"headers": {"Location": "/capture/x"}}, ProtocolError),  # job 404
    ],
)
async def test_replies_map_onto_the_sync_errors(
    status: int, kw: dict[str, Any], error: type[Exception]
) -> None:
    client = EpcisCaptureClient(config("https://epcis.test"), transport=_mock(status, **kw))
    try:
        with pytest.raises(error):
            await client.send_events(scans(1))
    finally:
        await client.aclose()


async def test_a_refused_document_rejects_every_event_with_the_reason() -> None:
    problem = {"type": "epcisException:ValidationException", "title": "Bad document", "status": 400}
    client = EpcisCaptureClient(config("https://epcis.test"), transport=_mock(400, json=problem))
    try:
        results = await client.send_events(scans(2))
    finally:
        await client.aclose()
    assert statuses(results) == {"ev-0": "rejected", "ev-1": "rejected"}
    assert results["ev-0"].reason == "Bad document"


async def test_the_request_carries_the_binding_headers_and_document() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "https://epcis.test/capture/j1"})
        return httpx.Response(
            200, json={"captureID": "j1", "running": False, "success": True, "errors": []}
        )

    cfg = config("https://epcis.test/base/", content_type="application/ld+json")
    client = EpcisCaptureClient(cfg, token=TOKEN, transport=httpx.MockTransport(handler))
    try:
        await client.send_events(scans(1))
    finally:
        await client.aclose()
    post, get = seen
    assert str(post.url) == "https://epcis.test/base/capture"
    assert post.headers["Content-Type"] == "application/ld+json"
    assert post.headers["GS1-Capture-Error-Behaviour"] == "proceed"
    assert post.headers["GS1-EPCIS-Version"] == "2.0.0"
    assert post.headers["Authorization"] == f"Bearer {TOKEN}"
    assert str(get.url) == "https://epcis.test/capture/j1"
    doc = json.loads(post.content)
    assert (doc["type"], doc["schemaVersion"]) == ("EPCISDocument", "2.0")
    assert doc["epcisBody"]["eventList"][0]["eventID"] == object_event(scans(1)[0], DOC)["eventID"]


@needs_schema
async def test_the_document_on_the_wire_is_valid_epcis() -> None:
    posted: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posted.append(json.loads(request.content))
            return httpx.Response(202, headers={"Location": "https://epcis.test/capture/j1"})
        return httpx.Response(
            200, json={"captureID": "j1", "running": False, "success": True, "errors": []}
        )

    client = EpcisCaptureClient(
        config("https://epcis.test/"), token=TOKEN, transport=httpx.MockTransport(handler)
    )
    units = [("81234560000000011234", "cn20"), ("(01)09506000134352(21)SER1", "gs1")]
    try:
        results = await client.send_events(scans(3, action="receive"), children={"ev-1": units})
    finally:
        await client.aclose()
    assert {r.status for r in results.values()} == {"accepted"}
    (doc,) = posted
    validate(doc)
    types = [e["type"] for e in doc["epcisBody"]["eventList"]]
    assert sorted(types) == ["AggregationEvent", "ObjectEvent", "ObjectEvent", "ObjectEvent"]


async def test_tls_is_verified_by_default(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(cert))
    tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(cert)}
    with EpcisEmulator(tls=tls, running_polls=0) as repo:
        assert repo.url.startswith("https://")
        untrusting = EpcisCaptureClient(config(repo.url))
        try:
            with pytest.raises(NetworkError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
                await untrusting.send_events(scans(1))
        finally:
            await untrusting.aclose()
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        trusting = EpcisCaptureClient(config(repo.url), tls=ctx)
        try:
            assert (await trusting.send_events(scans(1)))["ev-0"].status == "accepted"
        finally:
            await trusting.aclose()
