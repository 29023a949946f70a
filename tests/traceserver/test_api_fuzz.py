"""Trace API v1 fuzzed from its own OpenAPI document (schemathesis) on both stores.

A real server on 127.0.0.1 serves ``/openapi.json``; schemathesis loads the
document from there and generates requests for every operation, valid ones
and ones the document forbids.  Each answer must not be a 5xx and must match
the document (status code, content type, headers, body schema); a request the
document forbids must be refused (4xx).  The generated batches are steered so
that they also reach the store: some carry their ``batch_id`` as
``Idempotency-Key``, some of their events are made valid with codes from a
small pool (so duplicates and replays happen), and some are sent again; the
token is the shared one, a dock's (403 for another device's batch), a wrong
one or none.
Afterwards the store holds exactly the events the ``200`` replies accepted,
each from a batch answered ``200`` and as it was sent: no request stored a
part of a batch.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from scanner_agent.traceserver import EVENT_COLUMNS, TraceServerThread, issue_token
from tests.support.syncing import held_events
from tests.traceserver._stores import BACKENDS, fresh_db

TOKEN = "fuzz-token-0123456789"
EXAMPLES = 800
"""Generated requests per backend: well under two minutes each on this 2-core box."""
UNREGISTERED = "80000000000000000999"
CODES = ("81234567890123456789", "80000000000000000001", UNREGISTERED, "MA.156.M0.1")
"""Valid codes an event may be given: few, so duplicates and the platform's refusal happen."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
DOCK = "fuzz-dock"
"""The device of the dock token the fuzzer also sends with (its other batches are 403)."""
AUTHS = {
    "shared": {"Authorization": f"Bearer {TOKEN}"},
    "scheme-case": {"Authorization": f"bEaReR {TOKEN}"},
    "wrong": {"Authorization": "Bearer not-the-token"},
    "none": {},
}
BATCH_IDS = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1
).filter(lambda text: text.strip() == text)
"""Batch ids that can travel as an ``Idempotency-Key`` as they are (any Unicode, no controls)."""
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            # Unknown query parameters and fields are ignored, as docs/trace-api.md says: a
            # request with one is not invalid.
            "allow-extra-parameters": False,
            # The token is this test's to choose (AUTHS), not generated.
            "with-security-parameters": False,
        }
    }
)
AUTH_DRAWS = ["shared"] * 4 + ["dock"] * 2 + sorted(AUTHS)
"""Mostly the right token, so most requests get past the door."""
EVENT_FIELDS = ("event_id", "code", "scheme", "action", "bill", "scanned_at", "source")


@dataclass
class Ledger:
    """What the service said it stored: every ``200`` reply to a batch, and the batch sent."""

    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    accepted: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)

    def record(self, body: object, status: int, reply: bytes) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status != 200:
            return
        assert isinstance(body, dict)
        answer = json.loads(reply)
        events = body["events"]
        assert [r["event_id"] for r in answer["results"]] == [e["event_id"] for e in events]
        # A copy: hypothesis may hand the same body object to a later example, mutated.
        first = self.sent.setdefault(body["batch_id"], copy.deepcopy(body))
        assert _content(first) == _content(body)  # a replay: the same content, else 422
        for result in answer["results"]:
            if result["status"] == "accepted":
                self.accepted.add(result["event_id"])


def _content(batch: dict[str, Any]) -> list[object]:
    """What identifies a batch's content (sent_at and unknown fields are not part of it)."""
    events = [[e[name] for name in EVENT_FIELDS] for e in batch["events"]]
    return [batch["batch_id"], batch["device_id"], events]


def header_safe(text: str) -> bool:
    """Whether ``text``'s UTF-8 bytes can travel as a header value exactly as they are."""
    raw = text.encode("utf-8", "surrogatepass")
    return (
        bool(raw)
        and not any(b < 0x20 or b == 0x7F for b in raw)
        and raw.strip(b" \t") == raw
        and "\x00" not in text
    )


def steer(case: schemathesis.Case, data: st.DataObject) -> None:
    """Make a generated batch reach the store now and then (see the module's docstring)."""
    body = case.body
    if case.operation.path != "/v1/batches" or not isinstance(body, dict):
        return
    if isinstance(body.get("device_id"), str) and data.draw(st.booleans(), label="dock's"):
        body["device_id"] = DOCK
    aligned = data.draw(st.integers(0, 4), label="key = batch_id") > 0
    if isinstance(body.get("batch_id"), str) and aligned:
        if not header_safe(body["batch_id"]):
            body["batch_id"] = data.draw(BATCH_IDS, label="batch_id")
        case.headers["Idempotency-Key"] = body["batch_id"].encode("utf-8").decode("latin-1")
    events = body.get("events")
    if not isinstance(events, list):
        return
    for event in events:
        if isinstance(event, dict) and data.draw(st.booleans(), label="valid event"):
            code = data.draw(st.sampled_from(CODES), label="code")
            event.update(
                code=code,
                scheme="ma" if code.startswith("MA.") else "cn20",
                action=data.draw(st.sampled_from(["receive", "ship"]), label="action"),
                scanned_at="2026-12-07T08:00:00+08:00",
            )


@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_service_answers_every_generated_request_as_its_document_says(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = fresh_db(backend, tmp_path, request)
    ledger = Ledger()
    with (
        TraceServerThread(db, TOKEN, reject_codes=frozenset({UNREGISTERED})) as server,
        requests.Session() as session,
    ):
        dock = issue_token(str(db), DOCK).token
        auths = {**AUTHS, "dock": {"Authorization": f"Bearer {dock}"}}
        schema = schemathesis.openapi.from_url(server.url + "/openapi.json", config=CONFIG)
        # Only a valid case is steered: steering an invalid one could mend what made it invalid
        # (a device_id or batch_id replaced, an event's fields set), and the service would then
        # rightly accept a request the negative check expects refused.
        cases = st.one_of(
            schema.as_strategy(GenerationMode.POSITIVE).map(lambda case: (case, True)),
            schema.as_strategy(GenerationMode.NEGATIVE).map(lambda case: (case, False)),
        )
        sent_before: list[schemathesis.Case] = []

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(drawn=cases, auth=st.sampled_from(AUTH_DRAWS), data=st.data())
        def exchange(drawn: tuple[schemathesis.Case, bool], auth: str, data: st.DataObject) -> None:
            case, valid = drawn
            if sent_before and data.draw(st.integers(0, 9), label="resend") == 0:
                # Fixed bounds (the list grows): the draw's shape must not depend on the run.
                pick = data.draw(st.integers(0, 2**16), label="which")
                case = sent_before[pick % len(sent_before)]
            elif valid:
                steer(case, data)
            response = case.call(base_url=server.url, session=session, headers=auths[auth])
            case.validate_response(response, checks=CHECKS)
            if case.operation.path == "/v1/batches":
                sent_before.append(case)
                ledger.record(case.body, response.status_code, response.content)

        exchange()
        stored = held_events(server.store)
        held_batches = server.store.count_batches()
    assert ledger.accepted, ledger.statuses  # the run reached the store
    assert 403 in ledger.statuses, ledger.statuses  # and the dock token's device rule
    assert {e["event_id"] for e in stored} == ledger.accepted
    assert len(stored) == len(ledger.accepted)  # each once
    for event in stored:
        assert set(event) == set(EVENT_COLUMNS)
        batch = ledger.sent[event["batch_id"]]
        sent = [e for e in batch["events"] if e["event_id"] == event["event_id"]]
        assert [{k: event[k] for k in EVENT_FIELDS}] == [{k: sent[0][k] for k in EVENT_FIELDS}], (
            event
        )
    assert held_batches == len(ledger.sent)
