"""The batch ingest's fast paths answer exactly what the general paths answer.

``decode_batch`` reads the agent's compact bodies with a regex instead of
``json.loads``; ``refusals`` clears a whole batch with a few C calls instead of
checking event by event; the fingerprint and the reply of a plain batch are
joined from its strings instead of encoded; events are inserted with the
batch's fields bound once and the padding made of copies of the first event.
Each is compared here with the general path it stands in for, on the same
input, byte for byte.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner_agent.outbox import Batch as OutboxBatch
from scanner_agent.outbox import BatchEvent
from scanner_agent.sinks.trace_api import encode_batch
from scanner_agent.traceserver import RequestRefused, TraceServerThread, TraceStore, parse_batch
from scanner_agent.traceserver._protocol import (
    EVENT_FIELDS,
    Batch,
    EventRow,
    _all_kept,
    _decode_plain,
    decode_batch,
    event_problems,
    fingerprint,
    refusals,
)
from scanner_agent.traceserver._store import _CHUNK_ROWS

TOKEN = "fast-path-token"
RECEIVE_AT = "2025-03-01T09:30:00.123+08:00"


def cn20(n: int) -> str:
    return "8" + str(n).zfill(19)


def event(n: int, **fields: str) -> dict[str, str]:
    base = {
        "event_id": f"ev-{n:06d}",
        "code": cn20(n),
        "scheme": "cn20",
        "action": "receive",
        "bill": "PO-2025-0001",
        "scanned_at": RECEIVE_AT,
        "source": "tcp:10.0.0.7",
    }
    base.update(fields)
    return base


def batch(events: list[dict[str, Any]], batch_id: str = "b-1") -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "device_id": "dock-1",
        "sent_at": "2025-03-01T09:31:00.000+08:00",
        "events": events,
    }


def compact(body: object) -> bytes:
    """The body as the agent writes it: compact UTF-8 JSON, fields in the documented order."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


Outcome = Batch | tuple[int, str]


def reference(body: bytes, max_events: int = 50_000) -> Outcome:
    """What the service did before the fast path: ``json.loads`` then :func:`parse_batch`."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return 400, "body is not valid JSON"
    try:
        return parse_batch(payload, max_events=max_events)
    except RequestRefused as exc:
        return exc.status, exc.message


def decoded(body: bytes, max_events: int = 50_000) -> Outcome:
    try:
        return decode_batch(body, max_events=max_events)
    except RequestRefused as exc:
        return exc.status, exc.message


def rows_json(events: list[EventRow]) -> str:
    return json.dumps(events, ensure_ascii=False, separators=(",", ":"))


# -- decode_batch -------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"bill": "入库单-2025-001", "source": "扫码枪 1号"},
        {"bill": "emoji \U0001f4e6 and DEL \x7f", "source": "line\u2028sep"},
        {"bill": "", "source": ""},
        {"bill": '}],{"x":1}'.replace('"', ""), "source": "a,b:c[d]e{f}g/h"},
        {"scheme": "qr", "action": "steal", "scanned_at": "yesterday", "code": "x"},
    ],
)
def test_compact_body_takes_the_fast_path_and_decodes_like_json_loads(
    fields: dict[str, str],
) -> None:
    body = compact(batch([event(1, **fields), event(2), event(3, **fields)]))

    fast = _decode_plain(body, 50_000)

    assert fast is not None
    assert fast == reference(body)
    assert fast.plain_json == rows_json(fast.events)


def test_the_agents_bodies_take_the_fast_path() -> None:
    events = tuple(
        BatchEvent(i, str(uuid.uuid4()), cn20(i), "cn20", "receive", "入库单", RECEIVE_AT, "tcp")
        for i in range(3)
    )
    by_python = encode_batch(OutboxBatch("b-agent", events, 0), "dock-1")
    # As the outbox's lease renders the events: SQLite's json_object, in wire order.
    rendered = sqlite3.connect(":memory:").execute(
        "SELECT json_group_array(json_object("
        + ", ".join(f"'{name}', ?" for name in EVENT_FIELDS)
        + ")) FROM (SELECT 1)",
        events[0][1:],
    )
    one = rendered.fetchone()[0]
    by_sqlite = encode_batch(OutboxBatch("b-agent", events[:1], 0, events_json=one), "dock-1")

    for body in (by_python, by_sqlite):
        fast = _decode_plain(body, 50_000)
        assert fast is not None
        assert fast == reference(body)


def _bodies_outside_the_plain_form() -> list[bytes]:
    good = batch([event(1), event(2)])
    text = compact(good).decode()
    return [
        json.dumps(good).encode(),  # json.dumps' default separators (spaces)
        json.dumps(good, indent=2).encode(),
        compact(good) + b"\n",
        b" " + compact(good),
        "\ufeff".encode() + compact(good),  # BOM: json.loads refuses a str with one
        compact(good).decode().encode("utf-16"),
        compact({**good, "extra": 1}),
        compact({"device_id": "dock-1", **good}),
        compact(batch([{**event(1), "extra": "1"}, event(2)])),
        compact(batch([dict(reversed(list(event(1).items()))), event(2)])),
        compact(batch([event(1, bill='say "hi"'), event(2)])),
        compact(batch([event(1, bill="back\\slash"), event(2)])),
        json.dumps(batch([event(1, bill="é")]), separators=(",", ":")).encode(),  # \u00e9
        text.replace("PO-2025-0001", "PO\\/2025", 1).encode(),
        text.replace("PO-2025-0001", "PO\t2025", 1).encode(),  # raw control: not JSON
        text.replace("PO-2025-0001", "PO\x00", 1).encode(),
        text.replace("PO-2025-0001", "\\ud800", 1).encode(),  # lone surrogate
        text.replace("PO-2025-0001", "PO\udcff", 1).encode("utf-8", "surrogateescape"),
        compact(batch([])),
        compact(batch([event(1, event_id=""), event(2)])),
        compact(batch([event(1), event(1)])),  # repeated event_id
        compact(batch([event(1), {**event(2), "code": 2}])),
        compact(batch([event(1), {**event(2), "bill": None}])),
        compact(batch([event(1), [1, 2]])),
        compact({**good, "batch_id": ""}),
        text.replace("},{", "},1,{", 1).encode(),
        text.replace("},{", "}{", 1).encode(),
        text.replace("},{", "},,{", 1).encode(),
        text.replace("},{", "}][{", 1).encode(),
        text.replace("},{", "}[{", 1).encode(),  # a "[" only opens the array
        text.replace("[{", "[[{", 1).replace("}]}", "}]]}", 1).encode(),
        text.replace("}]}", "},]}", 1).encode(),
        text.replace("}]}", "}]", 1).encode(),
        text[:-20].encode(),
        b"",
        b"]}",
        b"[]",
        b'{"batch_id":"b"]}',
    ]


@pytest.mark.parametrize("body", _bodies_outside_the_plain_form())
def test_body_outside_the_plain_form_is_left_to_json_loads(body: bytes) -> None:
    assert _decode_plain(body, 50_000) is None
    assert decoded(body) == reference(body)


def test_too_many_events_is_reported_as_before() -> None:
    body = compact(batch([event(1), event(2), event(3)]))

    assert decoded(body, max_events=2) == (400, "too many events: 3 > 2")
    assert decoded(body, max_events=3) == reference(body, max_events=3)


_EDIT_CHARS = '"{}[],:\\ \t\x00\x7f8aé\u2028'


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["insert", "delete", "replace", "repeat"]),
            st.integers(min_value=0),
            st.sampled_from(_EDIT_CHARS),
            st.integers(min_value=1, max_value=40),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_any_damaged_body_decodes_like_json_loads(edits: list[tuple[str, int, str, int]]) -> None:
    """Bodies a few edits away from a plain one: the fast path never accepts what it should not."""
    text = compact(batch([event(1, bill="a"), event(2, source=""), event(3)])).decode()
    for kind, where, char, length in edits:
        at = where % (len(text) + 1)
        if kind == "insert":
            text = text[:at] + char + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + 1 :]
        elif kind == "replace":
            text = text[:at] + char + text[at + 1 :]
        else:  # a slice repeated, e.g. a whole event or a key twice
            text = text[:at] + text[at : at + length] + text[at:]
    body = text.encode()

    assert decoded(body) == reference(body)


_VALUE = st.text(st.characters(codec="utf-8"), max_size=6) | st.sampled_from(
    ["", "8" * 20, '"', "\\", "\x7f", "}]}", "},{", '","', ":[", "\n"]
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.tuples(*[_VALUE] * 7), min_size=1, max_size=4),
    head=st.tuples(_VALUE, _VALUE),
)
def test_any_compact_body_decodes_like_json_loads(
    values: list[tuple[str, ...]], head: tuple[str, str]
) -> None:
    events = [
        dict(zip(EVENT_FIELDS, (f"{i}-{row[0]}", *row[1:]), strict=True))
        for i, row in enumerate(values)
    ]
    body = compact({**batch(events, batch_id=head[0] or "b"), "device_id": head[1] or "d"})

    result = decoded(body)

    assert result == reference(body)
    if isinstance(result, Batch) and result.plain_json is not None:
        assert result.plain_json == rows_json(result.events)


# -- fingerprint --------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [{}, {"bill": "入库单"}, {"source": "DEL \x7f"}, {"bill": "~ `!#$%&'()*+-./;<=>?@^_|"}],
)
def test_fingerprint_of_a_plain_batch_is_the_canonical_one(fields: dict[str, str]) -> None:
    fast = decode_batch(compact(batch([event(1, **fields), event(2)])), max_events=10)
    assert fast.plain_json is not None

    assert fingerprint(fast) == fingerprint(dataclasses.replace(fast, plain_json=None))


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.tuples(*[_VALUE] * 7), min_size=1, max_size=3))
def test_fingerprint_is_the_same_whichever_path_decoded_the_body(
    values: list[tuple[str, ...]],
) -> None:
    events = [
        dict(zip(EVENT_FIELDS, (f"{i}-{row[0]}", *row[1:]), strict=True))
        for i, row in enumerate(values)
    ]
    body = compact(batch(events))
    general = reference(body)
    if any("\x00" in value for row in values for value in row):
        # No backend can hold a NUL (PostgreSQL text cannot): both paths refuse it.
        assert not isinstance(general, Batch)
        with pytest.raises(RequestRefused, match="not valid Unicode text"):
            decode_batch(body, max_events=10)
        return
    assert isinstance(general, Batch)

    assert fingerprint(decode_batch(body, max_events=10)) == fingerprint(general)


# -- refusals -----------------------------------------------------------------

_CODES = [cn20(7), cn20(8), "8000000000000000001", "800000000000000000012", "90000000000000000001"]
_CODES += ["8０００００００００００００００００００", cn20(7) + "\n" + cn20(8), cn20(7) + "\n", ""]
_CODES += ["(01)06901234567892(21)1", "MA.156.M0", cn20(999)]
_SCHEMES = ["cn20", "gs1", "ma", "qr", "cn20\n"]
_ACTIONS = ["receive", "sale", "destroy", "Receive", "steal", "receive\nship", ""]
_TIMES = [RECEIVE_AT, "2025-03-01T01:30:00Z", "2025-03-01t01:30:00.5z", "2025-12-31T23:59:60Z"]
_TIMES += ["2024-02-29T00:00:00Z", "2025-02-29T00:00:00Z", "2025-04-31T00:00:00Z"]
_TIMES += ["2025-04-30T00:00:00Z", "2025-02-28T24:00:00Z", "2025-03-01T09:30:00", "x"]
_TIMES += [RECEIVE_AT + "\n" + RECEIVE_AT, "2025-13-01T00:00:00Z", "2025-01-31T00:00:00-23:59"]
_TIMES += ["0000-01-31T00:00:00Z", "0001-01-31T00:00:00Z"]  # no year 0 in ``date``


def row(n: int, code: str, scheme: str, action: str, scanned_at: str) -> EventRow:
    return (f"ev-{n}", code, scheme, action, "bill", scanned_at, "source")


@settings(max_examples=400, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(_CODES),
            st.sampled_from(_SCHEMES),
            st.sampled_from(_ACTIONS),
            st.sampled_from(_TIMES),
        ),
        max_size=6,
    ),
    reject=st.frozensets(st.sampled_from(_CODES), max_size=2),
)
def test_refusals_are_what_event_problems_says(
    events: list[tuple[str, str, str, str]], reject: frozenset[str]
) -> None:
    rows = [row(n, *fields) for n, fields in enumerate(events)]
    expected = {i: p for i, p in enumerate(event_problems(rows, reject)) if p is not None}

    assert refusals(rows, reject) == expected


@pytest.mark.parametrize(
    ("codes", "times"),
    [
        # Joined with newlines, these look like three good values; they are two, one bad.
        ([cn20(1) + "\n" + cn20(2), cn20(3)], [RECEIVE_AT, RECEIVE_AT]),
        ([cn20(1), cn20(2)], [RECEIVE_AT + "\n" + RECEIVE_AT, RECEIVE_AT]),
    ],
)
def test_a_value_holding_a_newline_is_not_cleared_with_the_batch(
    codes: list[str], times: list[str]
) -> None:
    pairs = enumerate(zip(codes, times, strict=True))
    rows = [row(n, code, "cn20", "receive", at) for n, (code, at) in pairs]

    assert set(refusals(rows, frozenset())) == {0}


def test_a_whole_batch_of_good_events_is_cleared_at_once() -> None:
    times = [f"2025-{m:02d}-{d:02d}T09:30:00.123+08:00" for m in range(1, 13) for d in (1, 28, 30)]
    times += ["2025-01-31T00:00:00Z", "2024-12-31T23:59:60.5-05:00", "2025-03-01t00:00:00z"]
    rows = [
        row(n, cn20(n), "cn20", "sale", at) for n, at in enumerate(times) if at[5:10] != "02-30"
    ]

    assert _all_kept(rows, frozenset())
    assert refusals(rows, frozenset()) == {}
    assert refusals(rows, frozenset({cn20(4)})) == {4: "code not registered on the platform"}


# -- the store ----------------------------------------------------------------


def ingest_both(
    fast: TraceStore, general: TraceStore, body: dict[str, Any], **kwargs: Any
) -> bytes:
    """Ingest ``body`` through the fast path into one store, the general path into the other."""
    raw = compact(body)
    assert decode_batch(raw, max_events=50_000).plain_json is not None
    status, reply = fast.ingest_body(body["batch_id"], raw, **kwargs)
    assert (status, reply) == general.ingest_batch(body["batch_id"], None, body, **kwargs)
    return reply


def held(store: TraceStore) -> list[tuple[str, ...]]:
    rows = store._reader.execute(
        "SELECT seq, event_id, code, scheme, action, bill, scanned_at, source, device_id,"
        " batch_id FROM events ORDER BY seq"
    ).fetchall()
    return [tuple(r) for r in rows]


def test_replies_and_stored_events_are_the_same_on_both_paths(tmp_path: Path) -> None:
    reject = frozenset({cn20(99)})
    with TraceStore(tmp_path / "fast.db") as fast, TraceStore(tmp_path / "general.db") as general:
        first = [event(1), event(2, bill="入库单"), event(3, scheme="qr")]
        ingest_both(fast, general, batch(first, "b-1"), reject_codes=reject)
        scenarios = [
            [event(4), event(5)],  # all new
            [event(6), event(7, action="steal"), event(99, code=cn20(99)), event(8)],
            [event(1), event(9)],  # an event held already
            [event(3, scheme="qr"), event(10)],  # refused before, refused again
            [event(1, action="steal"), event(18)],  # refused, but its event id is held
            [event(11, code=cn20(1)), event(12)],  # a code held by ev-000001
            [event(13), event(14, code=cn20(13))],  # a duplicate inside the batch
            [event(15, event_id="ид-15", bill="单 \x7f"), event(2, bill="入库单")],
            [event(16, scanned_at="2024-02-29T00:00:00Z"), event(17, code="8" * 21)],
        ]
        for n, events in enumerate(scenarios, start=2):
            reply = ingest_both(fast, general, batch(events, f"b-{n}"), reject_codes=reject)
            assert json.loads(reply)["batch_id"] == f"b-{n}"

        assert held(fast) == held(general)
        hashes = "SELECT batch_id, body_hash, reply FROM batches ORDER BY batch_id"
        assert fast._reader.execute(hashes).fetchall() == general._reader.execute(hashes).fetchall()


def test_a_batch_first_sent_in_another_form_is_a_replay(tmp_path: Path) -> None:
    body = batch([event(1), event(2, bill="入库单"), event(3, action="x")])
    with TraceStore(tmp_path / "t.db") as store:
        first = store.ingest_body("b-1", json.dumps(body, indent=1).encode())
        again = store.ingest_body("b-1", compact({**body, "sent_at": "later"}))
        changed = store.ingest_body("b-1", compact(batch([event(1), event(2)])))

    assert again == first
    assert changed[0] == 422


@pytest.mark.parametrize("count", [1, 63, 64, 65, _CHUNK_ROWS, _CHUNK_ROWS + 1])
def test_events_are_stored_once_whatever_the_batch_size(tmp_path: Path, count: int) -> None:
    events = [event(n) for n in range(count)]
    with TraceStore(tmp_path / "fast.db") as fast, TraceStore(tmp_path / "general.db") as general:
        reply = ingest_both(fast, general, batch(events))
        # Again under a new id, with one new event among them: all held but that one.
        again = [event(count + 1), *events[1:], event(0, event_id="new-0")]
        second = json.loads(ingest_both(fast, general, batch(again, "b-2")))

        assert fast.count_events() == count + 1
        assert held(fast) == held(general)
    assert [r["status"] for r in json.loads(reply)["results"]] == ["accepted"] * count
    statuses = [r["status"] for r in second["results"]]
    assert statuses == ["accepted"] * count + ["duplicate"]


def test_padding_copies_of_the_first_event_are_never_stored(tmp_path: Path) -> None:
    # 65 events are sent as a statement of 128 rows: 63 of them copies of the first.
    with TraceStore(tmp_path / "t.db") as store:
        events = [event(n) for n in range(65)]
        status, reply = store.ingest_body("b-1", compact(batch(events)))
        stored = [row[0] for row in store._reader.execute("SELECT event_id FROM events")]

        assert status == 200
        assert sorted(stored) == sorted(e["event_id"] for e in events)
        assert [r["status"] for r in json.loads(reply)["results"]] == ["accepted"] * 65


# -- over HTTP ----------------------------------------------------------------


def test_compact_gzip_body_over_http_is_answered_like_any_other(tmp_path: Path) -> None:
    events = [event(1), event(2, scheme="qr"), event(1, event_id="other")]
    body = batch(events)
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Idempotency-Key": "b-1",
        "Content-Encoding": "gzip",
    }
    with (
        TraceServerThread(tmp_path / "t.db", TOKEN) as server,
        httpx.Client(base_url=server.url, headers=headers) as client,
    ):
        first = client.post("/v1/batches", content=gzip.compress(compact(body), 1))
        replay = client.post("/v1/batches", content=gzip.compress(json.dumps(body).encode()))
        bad = client.post(
            "/v1/batches",
            content=gzip.compress(compact(body).replace(b"PO-", b"PO\t")),
            headers={"Idempotency-Key": "b-2"},
        )

    assert first.status_code == 200
    assert [r["status"] for r in first.json()["results"]] == ["accepted", "rejected", "duplicate"]
    assert replay.content == first.content
    assert (bad.status_code, bad.json()) == (400, {"error": "body is not valid JSON"})
