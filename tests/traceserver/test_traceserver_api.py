"""Trace API v1 against a real reference server on loopback, over real HTTP, on a real SQLite file."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from scanner_agent.asgi import ServerStartError
from scanner_agent.traceserver import Faults, TraceServerThread, open_store
from tests.support.polling import wait_for
from tests.traceserver._stores import fresh_db

TOKEN = "test-token-0123456789"
UNREGISTERED = "80000000000000000999"
EVENT_KEYS = {
    "event_id",
    "code",
    "scheme",
    "action",
    "bill",
    "scanned_at",
    "source",
    "device_id",
    "batch_id",
    "received_at",
}


def cn20(n: int) -> str:
    return "8" + str(n).zfill(19)


def make_event(n: int, **fields: str) -> dict[str, str]:
    event = {
        "event_id": str(uuid.uuid4()),
        "code": cn20(n),
        "scheme": "cn20",
        "action": "receive",
        "bill": "PO-2025-0001",
        "scanned_at": "2025-03-01T09:30:00.123+08:00",
        "source": "scanner:/dev/ttyUSB0",
    }
    event.update(fields)
    return event


def make_batch(events: list[dict[str, Any]], batch_id: str | None = None) -> dict[str, Any]:
    return {
        "batch_id": batch_id or str(uuid.uuid4()),
        "device_id": "warehouse-01",
        "sent_at": "2025-03-01T09:31:00+08:00",
        "events": events,
    }


def post(
    client: httpx.Client,
    batch: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    content: bytes | None = None,
    compress: bool = False,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body = content if content is not None else json.dumps(batch).encode()
    sent_headers = {"Content-Type": "application/json"}
    if key is None and batch is not None:
        key = batch["batch_id"]
    if key is not None:
        sent_headers["Idempotency-Key"] = key
    if compress:
        body = gzip.compress(body)
        sent_headers["Content-Encoding"] = "gzip"
    sent_headers.update(headers or {})
    return client.post("/v1/batches", content=body, headers=sent_headers)


def statuses(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [result["status"] for result in response.json()["results"]]


def all_events(client: httpx.Client, limit: int = 1000) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    cursor: str | None = "0"
    while cursor is not None:
        page = client.get("/v1/events", params={"after": cursor, "limit": limit})
        assert page.status_code == 200, page.text
        body = page.json()
        events.extend(body["events"])
        cursor = body["next"]
    return events


def authed_client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_path(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Every test of this contract suite runs against both backends."""
    return fresh_db(request.param, tmp_path, request)


@pytest.fixture
def server(db_path: Path) -> Iterator[TraceServerThread]:
    with TraceServerThread(db_path, TOKEN, reject_codes=frozenset({UNREGISTERED})) as running:
        yield running


@pytest.fixture
def client(server: TraceServerThread) -> Iterator[httpx.Client]:
    with authed_client(server.url) as c:
        yield c


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TraceServerThread]:
    """One server for the tests of refused requests, which must leave its store unchanged."""
    db = fresh_db(request.param, tmp_path_factory.mktemp("shared"), request)
    with TraceServerThread(db, TOKEN) as running:
        yield running


@pytest.fixture
def shared_client(shared: TraceServerThread) -> Iterator[httpx.Client]:
    with authed_client(shared.url) as c:
        yield c


# -- per-event verdicts -------------------------------------------------------


def test_each_event_is_answered_in_order_accepted_duplicate_or_rejected(
    client: httpx.Client, server: TraceServerThread
) -> None:
    first = make_event(1)
    events = [
        first,
        make_event(2, scheme="gs1", code="(01)06901234567892(17)261231(10)B1(21)SN0001"),
        make_event(3, scheme="ma", code="MA.156.M0.100001.0001"),
        make_event(1),  # same code, action and bill as `first`: duplicate
        make_event(1, action="ship"),  # same code, other action: a new fact
        make_event(1, bill="PO-2025-0002"),  # same code and action, other bill: a new fact
        make_event(4, scheme="ean13"),
        make_event(5, code=UNREGISTERED),
    ]
    response = post(client, make_batch(events))

    body = response.json()
    assert [r["event_id"] for r in body["results"]] == [e["event_id"] for e in events]
    assert statuses(response) == [
        "accepted",
        "accepted",
        "accepted",
        "duplicate",
        "accepted",
        "accepted",
        "rejected",
        "rejected",
    ]
    reasons = [r["reason"] for r in body["results"]]
    assert all(reasons[i] is None for i in (0, 1, 2, 4, 5))
    assert first["event_id"] in reasons[3]
    assert reasons[6] == "unknown scheme: ean13"
    assert reasons[7] == "code not registered on the platform"
    assert server.store.count_events() == 5


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"scheme": "qr"}, "unknown scheme: qr"),
        ({"code": "8000000000000000001"}, "malformed cn20 code"),  # 19 digits
        ({"code": "800000000000000000012"}, "malformed cn20 code"),  # 21 digits
        ({"code": "90000000000000000001"}, "malformed cn20 code"),  # not starting with 8
        ({"code": "8000000000000000000A"}, "malformed cn20 code"),
        ({"code": "8０００００００００００００００００００"}, "malformed cn20 code"),  # full-width
        ({"scheme": "gs1", "code": "(01)06901234567892(10)B1"}, "malformed gs1 code"),
        ({"scheme": "gs1", "code": "0106901234567892(21)SN1"}, "malformed gs1 code"),
        ({"scheme": "ma", "code": "MB.156.M0.100001"}, "malformed ma code"),
        ({"action": "steal"}, "unknown action: steal"),
        ({"action": "Receive"}, "unknown action: Receive"),
        ({"scanned_at": "2025-03-01T09:30:00"}, "scanned_at must be RFC 3339 with offset"),
        ({"scanned_at": "2025-03-01 09:30:00+08:00"}, "scanned_at must be RFC 3339 with offset"),
        ({"scanned_at": "2025-02-30T09:30:00Z"}, "scanned_at must be RFC 3339 with offset"),
        ({"scanned_at": "1740792600"}, "scanned_at must be RFC 3339 with offset"),
        ({"code": UNREGISTERED}, "code not registered on the platform"),
    ],
)
def test_event_the_service_refuses_is_rejected_with_a_reason_and_not_stored(
    client: httpx.Client, server: TraceServerThread, fields: dict[str, str], reason: str
) -> None:
    good, bad = make_event(10), make_event(11, **fields)
    response = post(client, make_batch([bad, good]))

    assert statuses(response) == ["rejected", "accepted"]
    assert reason in response.json()["results"][0]["reason"]
    assert [e["event_id"] for e in all_events(client)] == [good["event_id"]]


def test_code_held_from_an_earlier_batch_is_a_duplicate_naming_the_holder(
    client: httpx.Client,
) -> None:
    original = make_event(20)
    assert statuses(post(client, make_batch([original]))) == ["accepted"]

    again = make_event(20)
    response = post(client, make_batch([again]))

    assert statuses(response) == ["duplicate"]
    assert original["event_id"] in response.json()["results"][0]["reason"]
    assert [e["event_id"] for e in all_events(client)] == [original["event_id"]]


def test_event_id_already_held_is_accepted_again_and_not_stored_twice(
    client: httpx.Client, server: TraceServerThread
) -> None:
    # The agent crashed after sending e1, e2 in batch A and re-split them into batch B.
    e1, e2, e3 = make_event(31), make_event(32), make_event(33)
    batch_a = make_batch([e1, e2])
    assert statuses(post(client, batch_a)) == ["accepted", "accepted"]

    response = post(client, make_batch([e2, e3]))

    assert statuses(response) == ["accepted", "accepted"]
    held = all_events(client)
    assert [e["event_id"] for e in held] == [e1["event_id"], e2["event_id"], e3["event_id"]]
    assert held[1]["batch_id"] == batch_a["batch_id"]  # the first copy is the one kept
    assert server.store.count_events() == 3


def test_event_id_already_held_is_accepted_even_when_it_would_now_be_rejected(
    db_path: Path,
) -> None:
    event = make_event(34)
    with TraceServerThread(db_path, TOKEN) as first, authed_client(first.url) as c:
        assert statuses(post(c, make_batch([event]))) == ["accepted"]
    refusing = frozenset({event["code"]})
    with (
        TraceServerThread(db_path, TOKEN, reject_codes=refusing) as second,
        authed_client(second.url) as c,
    ):
        assert statuses(post(c, make_batch([event]))) == ["accepted"]
        assert statuses(post(c, make_batch([make_event(34, action="ship")]))) == ["rejected"]


def test_duplicate_inside_one_batch_keeps_the_first_event(client: httpx.Client) -> None:
    a, b = make_event(40), make_event(40)
    response = post(client, make_batch([a, b]))

    assert statuses(response) == ["accepted", "duplicate"]
    assert a["event_id"] in response.json()["results"][1]["reason"]


def test_empty_batch_is_answered_with_no_results(client: httpx.Client) -> None:
    batch = make_batch([])
    response = post(client, batch)

    assert response.status_code == 200
    assert response.json() == {"batch_id": batch["batch_id"], "results": []}


def test_unicode_bill_and_source_are_stored_as_sent(client: httpx.Client) -> None:
    event = make_event(41, bill="入库单-2025-001", source="扫码枪 1号")
    assert statuses(post(client, make_batch([event]))) == ["accepted"]

    (held,) = all_events(client)
    assert (held["bill"], held["source"]) == ("入库单-2025-001", "扫码枪 1号")


def test_a_nul_character_is_refused_by_every_backend_and_nothing_is_stored(
    server: TraceServerThread, client: httpx.Client
) -> None:
    """PostgreSQL text cannot hold U+0000; the API refuses it the same way on SQLite."""
    response = post(client, make_batch([make_event(42), make_event(43, bill="B\u0000-1")]))
    assert response.status_code == 400
    assert "bill is not valid Unicode text" in response.json()["error"]
    assert server.store.count_events() == 0


def test_fields_come_back_exactly_as_sent_from_the_compact_form_and_with_escapes(
    client: httpx.Client,
) -> None:
    """The agent's compact body takes each store's fast path (PostgreSQL: COPY text joined
    as is); a backslash, tab, newline or quote must take the escaping path, never be mangled."""
    sent = [
        make_event(44, bill="SO-1", source="tcp:dock-1"),
        make_event(45, bill='SO\\2\t"x"\n\\N', source="C:\\scan\\r\r"),
    ]
    for event in sent:
        body = json.dumps(make_batch([event]), separators=(",", ":")).encode()
        assert statuses(post(client, content=body, key=json.loads(body)["batch_id"])) == [
            "accepted"
        ]
    held = [{key: event[key] for key in sent[0]} for event in all_events(client)]
    assert held == sent


# -- idempotency --------------------------------------------------------------


def test_replayed_batch_returns_the_first_reply_byte_for_byte(
    client: httpx.Client, server: TraceServerThread
) -> None:
    held = make_event(50)
    post(client, make_batch([held]))
    batch = make_batch([make_event(51), make_event(50), make_event(52, scheme="x")])
    first = post(client, batch)
    assert statuses(first) == ["accepted", "duplicate", "rejected"]

    # Same batch, re-serialised differently, compressed, with a fresh sent_at.
    replay = {**batch, "sent_at": "2025-03-01T10:00:00+08:00"}
    replay["events"] = [dict(reversed(list(e.items()))) for e in batch["events"]]
    content = json.dumps(replay, indent=2, ensure_ascii=True).encode()
    second = post(client, key=batch["batch_id"], content=content, compress=True)

    assert second.status_code == 200
    assert second.content == first.content
    assert server.store.count_events() == 2
    assert server.store.count_batches() == 2


def test_same_key_with_a_different_body_is_422_and_changes_nothing(
    client: httpx.Client, server: TraceServerThread
) -> None:
    batch = make_batch([make_event(60), make_event(61)])
    first = post(client, batch)
    changed = {**batch, "events": [batch["events"][0], make_event(62)]}

    response = post(client, changed)

    assert response.status_code == 422
    assert batch["batch_id"] in response.json()["error"]
    assert server.store.count_events() == 2
    assert post(client, batch).content == first.content


def test_idempotency_key_must_equal_the_body_batch_id(
    client: httpx.Client, server: TraceServerThread
) -> None:
    batch = make_batch([make_event(70)])
    response = post(client, batch, key="some-other-batch")

    assert response.status_code == 400
    assert "batch_id" in response.json()["error"]
    assert server.store.count_events() == 0


@pytest.mark.parametrize("batch_id", ["中文-1", "2-Å", "b-à"])
def test_a_non_ascii_batch_id_is_its_own_idempotency_key(
    client: httpx.Client, batch_id: str
) -> None:
    """The key is the header's raw bytes read as UTF-8, only the spaces and tabs around it
    dropped: "Å" (UTF-8 C3 85) and "à" (C3 A0) end in bytes that are Latin-1 whitespace
    (NEL, no-break space), which str.strip() took off, so the key no longer matched (400)."""
    batch = make_batch([make_event(72)], batch_id=batch_id)
    headers = [
        (b"Authorization", f"Bearer {TOKEN}".encode()),
        (b"Idempotency-Key", batch_id.encode("utf-8")),
    ]
    body = json.dumps(batch).encode()

    first = client.post("/v1/batches", content=body, headers=headers)
    again = client.post("/v1/batches", content=body, headers=headers)

    assert first.status_code == 200, first.text
    assert first.json()["batch_id"] == batch_id
    assert again.content == first.content


def test_missing_idempotency_key_is_400(client: httpx.Client) -> None:
    response = client.post("/v1/batches", json=make_batch([make_event(71)]))

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]


def test_concurrent_copies_of_one_batch_store_it_once_and_all_get_the_same_reply(
    server: TraceServerThread,
) -> None:
    batch = make_batch([make_event(80 + i) for i in range(200)])
    replies: list[bytes] = []

    def send() -> None:
        with authed_client(server.url) as c:
            response = post(c, batch)
            assert response.status_code == 200
            replies.append(response.content)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(replies) == 6
    assert len(set(replies)) == 1
    assert server.store.count_events() == 200


def test_concurrent_batches_with_overlapping_codes_hold_each_code_once(
    server: TraceServerThread,
) -> None:
    # Eight devices scan the same 100 codes for the same bill at the same time.
    batches = [make_batch([make_event(i) for i in range(100)]) for _ in range(8)]
    verdicts: list[list[str]] = []

    def send(batch: dict[str, Any]) -> None:
        with authed_client(server.url) as c:
            verdicts.append(statuses(post(c, batch)))

    threads = [threading.Thread(target=send, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(verdicts) == 8
    per_code = list(zip(*verdicts, strict=True))
    assert all(sorted(v) == ["accepted"] + ["duplicate"] * 7 for v in per_code)
    assert server.store.count_events() == 100


# -- gzip and size limits -----------------------------------------------------


def test_gzip_body_is_decompressed_and_stored(
    client: httpx.Client, server: TraceServerThread
) -> None:
    batch = make_batch([make_event(90 + i) for i in range(50)])
    response = post(client, batch, compress=True)

    assert statuses(response) == ["accepted"] * 50
    assert server.store.count_events() == 50


def test_multi_member_gzip_body_is_accepted(client: httpx.Client) -> None:
    batch = make_batch([make_event(95)])
    raw = json.dumps(batch).encode()
    content = gzip.compress(raw[:10]) + gzip.compress(raw[10:])
    response = post(client, key=batch["batch_id"], content=content, headers=_gzip_header())

    assert statuses(response) == ["accepted"]


def _gzip_header() -> dict[str, str]:
    return {"Content-Encoding": "gzip"}


@pytest.fixture
def small_server(db_path: Path) -> Iterator[TraceServerThread]:
    with TraceServerThread(db_path, TOKEN, max_body_bytes=64 * 1024, max_events=100) as running:
        yield running


@pytest.fixture
def small_client(small_server: TraceServerThread) -> Iterator[httpx.Client]:
    with authed_client(small_server.url) as c:
        yield c


def test_body_over_the_limit_is_413_and_the_connection_stays_usable(
    small_client: httpx.Client, small_server: TraceServerThread
) -> None:
    batch = make_batch([make_event(100, source="x" * 1000) for _ in range(90)])
    assert len(json.dumps(batch)) > 64 * 1024

    response = post(small_client, batch)

    assert response.status_code == 413
    assert "64" in response.json()["error"] or "65536" in response.json()["error"]
    assert small_server.store.count_events() == 0
    assert small_client.get("/v1/health").status_code == 200


def test_chunked_body_over_the_limit_is_413(small_client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"batch_id": "b", "device_id": "d", "sent_at": "s", "events": ['
        for _ in range(200):
            yield json.dumps(make_event(101, source="y" * 1000)).encode() + b","
        yield b"{}]}"

    response = small_client.post("/v1/batches", content=chunks(), headers={"Idempotency-Key": "b"})

    assert response.status_code == 413


def test_compressed_body_over_the_limit_is_413(small_client: httpx.Client) -> None:
    # Random event ids do not compress: 400 KiB of them stay above 64 KiB gzipped.
    content = gzip.compress(json.dumps([str(uuid.uuid4()) for _ in range(10_000)]).encode())
    assert len(content) > 64 * 1024

    response = post(small_client, key="b", content=content, headers=_gzip_header())

    assert response.status_code == 413
    assert "decompressed" not in response.json()["error"]


def test_gzip_bomb_is_413_without_inflating_it(client: httpx.Client) -> None:
    # 64 MiB of zeros compresses to ~64 KiB: far below 8 MiB sent, far above it inflated.
    bomb = gzip.compress(b"0" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 1024 * 1024

    response = post(client, key="b", content=bomb, headers=_gzip_header())

    assert response.status_code == 413
    assert "decompressed" in response.json()["error"]


def test_too_many_events_is_400(small_client: httpx.Client) -> None:
    response = post(small_client, make_batch([make_event(i) for i in range(101)]))

    assert response.status_code == 400
    assert "too many events" in response.json()["error"]


# -- malformed requests -------------------------------------------------------


def _dup_id_batch() -> dict[str, Any]:
    event = make_event(110)
    return make_batch([event, {**event, "code": cn20(111)}])


def _with(**fields: Any) -> dict[str, Any]:
    return {**make_event(113), **fields}


def _without(field: str) -> dict[str, Any]:
    event = make_event(112)
    del event[field]
    return make_batch([event])


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[1, 2, 3]", "JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (json.dumps({"batch_id": "b", "device_id": "d", "sent_at": "s"}).encode(), "events"),
        (
            json.dumps({"batch_id": "b", "device_id": "d", "sent_at": "s", "events": {}}).encode(),
            "events must be a list",
        ),
        (
            json.dumps(
                {"batch_id": "b", "device_id": "d", "sent_at": "s", "events": ["x"]}
            ).encode(),
            "events[0] must be an object",
        ),
        (json.dumps({**make_batch([]), "batch_id": 7}).encode(), "batch_id"),
        (json.dumps(_without("code")).encode(), "missing field: code"),
        (json.dumps(_without("event_id")).encode(), "missing field: event_id"),
        (
            json.dumps(make_batch([_with(bill=None)])).encode(),
            "field must be a string: bill",
        ),
        (
            json.dumps(make_batch([_with(code=80000000000000000113)])).encode(),
            "field must be a string: code",
        ),
        (json.dumps(make_batch([make_event(114, event_id="")])).encode(), "event_id"),
        (json.dumps(_dup_id_batch()).encode(), "duplicate event_id"),
        (
            json.dumps(make_batch([make_event(115, bill="\ud800")])).encode(),
            "not valid Unicode",
        ),
    ],
)
def test_malformed_batch_is_400_with_an_error_and_stores_nothing(
    shared_client: httpx.Client, shared: TraceServerThread, content: bytes, error: str
) -> None:
    batch_id = "b"
    with contextlib.suppress(ValueError, TypeError, KeyError, RecursionError):
        batch_id = json.loads(content)["batch_id"]
    before = (shared.store.count_events(), shared.store.count_batches())
    response = post(shared_client, key=str(batch_id), content=content)

    assert response.status_code == 400, response.text
    assert error in response.json()["error"]
    assert (shared.store.count_events(), shared.store.count_batches()) == before


@pytest.mark.parametrize(
    "content",
    [b"plain text, not gzip", gzip.compress(b'{"batch_id": "b"}')[:-12]],
    ids=["not-gzip", "truncated"],
)
def test_bad_gzip_body_is_400(shared_client: httpx.Client, content: bytes) -> None:
    response = post(shared_client, key="b", content=content, headers=_gzip_header())

    assert response.status_code == 400
    assert "gzip" in response.json()["error"]


def test_unsupported_content_encoding_is_415(shared_client: httpx.Client) -> None:
    batch = make_batch([make_event(120)])
    response = post(shared_client, batch, headers={"Content-Encoding": "br"})

    assert response.status_code == 415
    assert "br" in response.json()["error"]


def test_unknown_path_and_wrong_method_get_json_errors(shared_client: httpx.Client) -> None:
    missing = shared_client.get("/v2/batches")
    wrong = shared_client.get("/v1/batches")

    assert missing.status_code == 404
    assert "error" in missing.json()
    assert wrong.status_code == 405
    assert "error" in wrong.json()


# -- authentication -----------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token",
        f"Basic {TOKEN}",
        f"Bearer {TOKEN}x",
        "Bearer",
        "Bearer 令牌".encode(),
    ],
    ids=["none", "wrong", "basic", "longer", "empty", "utf8"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/batches"), ("GET", "/v1/events"), ("GET", f"/v1/codes/{cn20(1)}")],
)
def test_missing_or_wrong_token_is_401_on_every_data_endpoint(
    shared: TraceServerThread, authorization: str | bytes | None, method: str, path: str
) -> None:
    headers = [(b"Idempotency-Key", b"b")]
    if authorization is not None:
        value = authorization if isinstance(authorization, bytes) else authorization.encode()
        headers.append((b"Authorization", value))
    batch = make_batch([make_event(130)], batch_id="b")
    before = shared.store.count_batches()
    with httpx.Client(base_url=shared.url, timeout=10) as anonymous:
        content = json.dumps(batch).encode() if method == "POST" else None
        response = anonymous.request(method, path, headers=headers, content=content)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "error" in response.json()
    assert shared.store.count_batches() == before


def test_health_needs_no_token(shared: TraceServerThread) -> None:
    response = httpx.get(shared.url + "/v1/health", timeout=10)

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_token_scheme_is_case_insensitive(shared: TraceServerThread) -> None:
    headers = {"Authorization": f"bearer {TOKEN}"}
    response = httpx.get(shared.url + "/v1/events", headers=headers, timeout=10)

    assert response.status_code == 200


# -- look-ups -----------------------------------------------------------------


def test_codes_lookup_returns_every_event_for_the_code_in_order(client: httpx.Client) -> None:
    code = "(01)06901234567892(17)261231(10)B/1(21)SN\\(0001)/A"  # "(" in a value: "\\("
    received = make_event(140, scheme="gs1", code=code)
    shipped = make_event(140, scheme="gs1", code=code, action="ship", bill="SO-1")
    other = make_event(141)
    batch = make_batch([received, other, shipped])
    post(client, batch)

    response = client.get("/v1/codes/" + quote(code, safe=""))

    assert response.status_code == 200
    body = response.json()
    assert body["code"] == code
    assert [e["event_id"] for e in body["events"]] == [received["event_id"], shipped["event_id"]]
    assert set(body["events"][0]) == EVENT_KEYS
    assert body["events"][1]["action"] == "ship"
    assert body["events"][0]["batch_id"] == batch["batch_id"]
    assert body["events"][0]["device_id"] == "warehouse-01"


def test_a_code_holding_a_line_break_is_looked_up_like_any_other(client: httpx.Client) -> None:
    """An ``ma`` code is ``MA.`` and anything after it: a stored one must be found (it was 404:
    the route's ``{code:path}`` did not match across a line break; found by the fuzzer)."""
    code = "MA.156.M0\n1\r2"
    event = make_event(0, scheme="ma", code=code)
    assert statuses(post(client, make_batch([event]))) == ["accepted"]

    response = client.get("/v1/codes/" + quote(code, safe=""))

    assert response.status_code == 200, response.text
    assert response.json()["code"] == code
    assert [e["event_id"] for e in response.json()["events"]] == [event["event_id"]]


def test_codes_lookup_for_an_unknown_code_is_200_and_empty(client: httpx.Client) -> None:
    response = client.get("/v1/codes/" + cn20(999_999))

    assert response.status_code == 200
    assert response.json() == {"code": cn20(999_999), "events": []}


def test_events_pages_cover_every_held_event_exactly_once_in_order(
    client: httpx.Client,
) -> None:
    expected: list[str] = []
    for b in range(5):
        events = [make_event(1000 + b * 10 + i) for i in range(9)]
        events.append(make_event(1000 + b * 10))  # duplicate: not held
        events.append(make_event(0, scheme="nope"))  # rejected: not held
        post(client, make_batch(events))
        expected.extend(e["event_id"] for e in events[:9])

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "7"} if cursor is None else {"limit": "7", "after": cursor}
        body = client.get("/v1/events", params=params).json()
        if body["next"] is None:
            assert body["events"] == []
            break
        pages.append([e["event_id"] for e in body["events"]])
        cursor = body["next"]

    assert [len(p) for p in pages] == [7, 7, 7, 7, 7, 7, 3]
    assert [event_id for page in pages for event_id in page] == expected


def test_events_feed_returns_the_documented_fields(client: httpx.Client) -> None:
    event = make_event(1100)
    batch = make_batch([event])
    post(client, batch)

    (held,) = all_events(client)

    assert set(held) == EVENT_KEYS
    assert {k: held[k] for k in event} == event
    assert held["batch_id"] == batch["batch_id"]
    assert held["device_id"] == batch["device_id"]
    assert held["received_at"].endswith("Z")


def test_events_feed_on_an_empty_store_has_no_next_cursor(client: httpx.Client) -> None:
    assert client.get("/v1/events").json() == {"events": [], "next": None}


def test_events_cursor_resumes_after_new_events_arrive(client: httpx.Client) -> None:
    first = make_event(1200)
    post(client, make_batch([first]))
    page = client.get("/v1/events").json()
    cursor = page["next"]
    assert client.get("/v1/events", params={"after": cursor}).json()["events"] == []

    later = make_event(1201)
    post(client, make_batch([later]))

    resumed = client.get("/v1/events", params={"after": cursor}).json()
    assert [e["event_id"] for e in resumed["events"]] == [later["event_id"]]


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "-1"}, {"limit": "ten"}, {"after": "-1"}, {"after": "abc"}],
)
def test_bad_events_query_is_400(shared_client: httpx.Client, params: dict[str, str]) -> None:
    response = shared_client.get("/v1/events", params=params)

    assert response.status_code == 400
    assert "error" in response.json()


def test_events_limit_above_the_maximum_is_lowered(client: httpx.Client) -> None:
    post(client, make_batch([make_event(1300)]))

    response = client.get("/v1/events", params={"limit": "1000000"})

    assert response.status_code == 200
    assert len(response.json()["events"]) == 1


# -- fault hooks --------------------------------------------------------------


def test_armed_503s_carry_retry_after_then_the_service_recovers(
    client: httpx.Client, server: TraceServerThread
) -> None:
    batch = make_batch([make_event(1400)])
    server.faults.unavailable(2, retry_after=7)

    failures = [post(client, batch), post(client, batch)]
    recovered = post(client, batch)

    assert [r.status_code for r in failures] == [503, 503]
    assert all(r.headers["Retry-After"] == "7" for r in failures)
    assert all("error" in r.json() for r in failures)
    assert statuses(recovered) == ["accepted"]
    assert server.faults.pending == 0
    assert server.faults.injected == 2
    assert server.store.count_events() == 1


def test_armed_429s_carry_retry_after_and_store_nothing(
    client: httpx.Client, server: TraceServerThread
) -> None:
    batch = make_batch([make_event(1410)])
    server.faults.throttle(1, retry_after=0)

    throttled = post(client, batch)
    assert server.store.count_events() == 0
    recovered = post(client, batch)

    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "0"
    assert statuses(recovered) == ["accepted"]


def test_faults_given_at_construction_apply_to_the_first_requests(db_path: Path) -> None:
    faults = Faults(1, status=429, retry_after=2)
    with TraceServerThread(db_path, TOKEN, faults=faults) as running:
        assert running.faults is faults
        with authed_client(running.url) as c:
            batch = make_batch([make_event(1420)])
            assert post(c, batch).status_code == 429
            assert post(c, batch).status_code == 200


def test_faults_hit_only_batch_posts_not_reads(
    client: httpx.Client, server: TraceServerThread
) -> None:
    server.faults.unavailable(1)

    assert client.get("/v1/events").status_code == 200
    assert client.get("/v1/health").status_code == 200
    assert server.faults.pending == 1


# -- lifecycle ----------------------------------------------------------------


def test_store_survives_a_restart_and_replays_still_return_the_first_reply(
    db_path: Path,
) -> None:
    batch = make_batch([make_event(1500), make_event(1501), make_event(1502, scheme="?")])
    with TraceServerThread(db_path, TOKEN) as first, authed_client(first.url) as c:
        first_reply = post(c, batch).content
        before = all_events(c)

    with TraceServerThread(db_path, TOKEN) as second, authed_client(second.url) as c:
        assert all_events(c) == before
        assert post(c, batch).content == first_reply
        changed = {**batch, "events": batch["events"][:2]}
        assert post(c, changed).status_code == 422
        assert statuses(post(c, make_batch([make_event(1500)]))) == ["duplicate"]
        assert second.store.count_events() == 2


def test_server_thread_reports_its_real_port_and_stops_cleanly(db_path: Path) -> None:
    running = TraceServerThread(db_path, TOKEN)
    assert not running.running
    with running:
        assert running.running
        port = running.port
        assert port > 0
        assert running.url == f"http://127.0.0.1:{port}"
        assert httpx.get(running.url + "/v1/health", timeout=10).status_code == 200
    assert not running.running
    with pytest.raises(RuntimeError):
        _ = running.url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2)
    running.stop()  # idempotent


def test_server_thread_on_a_busy_port_fails_to_start(db_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServerStartError, match=f"Failed to listen on 127.0.0.1:{port}: "):
            TraceServerThread(db_path, TOKEN, port=port).start()


# -- logging and the foreground server ---------------------------------------


def test_each_batch_is_logged_once_at_debug_and_the_token_never(
    client: httpx.Client, server: TraceServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="scanner_agent.traceserver")
    good = make_batch([make_event(1600), make_event(1600)])
    post(client, good)
    post(client, good)
    post(client, make_batch([make_event(1601)]), key="mismatch")
    with httpx.Client(base_url=server.url, timeout=10) as stranger:
        stranger.post(
            "/v1/batches",
            json=good,
            headers={"Authorization": "Bearer guessed-secret", "Idempotency-Key": "x"},
        )

    lines = [r.getMessage() for r in caplog.records if r.name == "scanner_agent.traceserver"]
    assert len(lines) == 4
    assert "1 accepted" in lines[0]
    assert "1 duplicate" in lines[0]
    assert "replay" in lines[1]
    assert "400" in lines[2]
    assert "401" in lines[3]
    assert not any(TOKEN in line or "guessed-secret" in line for line in lines)


def test_serve_runs_in_the_foreground_until_sigterm(db_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "from scanner_agent.traceserver import serve; "
        f"serve('127.0.0.1:{port}', {str(db_path)!r}, {TOKEN!r}, max_events=10)"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            assert process.poll() is None, "server exited early"
            return False

        wait_for(up, 20, "the server to come up")
        with authed_client(url) as c:
            assert statuses(post(c, make_batch([make_event(1700)]))) == ["accepted"]
            too_many = post(c, make_batch([make_event(1710 + i) for i in range(11)]))
            assert too_many.status_code == 400
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=20)

    assert exit_code == 0
    store = open_store(db_path)
    try:
        assert store.count_events() == 1
    finally:
        store.close()


def test_utf8_token_and_batch_id_are_compared_as_sent(db_path: Path) -> None:
    token = "令牌-secret"
    batch = make_batch([make_event(1800)], batch_id="批次-0001")
    headers = [
        (b"Authorization", f"Bearer {token}".encode()),
        (b"Idempotency-Key", batch["batch_id"].encode()),
        (b"Content-Type", b"application/json"),
    ]
    with TraceServerThread(db_path, token) as running, httpx.Client(timeout=10) as c:
        response = c.post(
            running.url + "/v1/batches", content=json.dumps(batch).encode(), headers=headers
        )

    assert statuses(response) == ["accepted"]
    assert response.json()["batch_id"] == "批次-0001"
