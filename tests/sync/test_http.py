"""The one HTTP layer: every sink maps a status and a dead link to the same sync error, and no
error ever carries the credential, whatever the service echoes back.

A real HTTP server on loopback answers with the status, headers and body a
test asks for (echoing the request's ``Authorization`` header in the body, as
a careless proxy's error page does); the Trace API and EPCIS clients are sent
at it for real.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner_agent.config import SyncConfig
from scanner_agent.kernel import (
    AuthError,
    BatchRejectedError,
    BatchTooLargeError,
    ProtocolError,
    RateLimitedError,
    SyncError,
    backoff_delay,
)
from scanner_agent.outbox import Batch, BatchEvent, uuid7
from scanner_agent.sinks.epcis import (
    EpcisCaptureClient,
    EpcisCaptureConfig,
    EpcisConfig,
    scan_events,
)
from scanner_agent.sinks.trace_api import TraceApiClient
from scanner_agent.sync import (
    NetworkError,
    ServiceError,
    redact,
    status_error,
)

TOKEN = "http-layer-token-7f3a"


class _Reply(http.server.BaseHTTPRequestHandler):
    """Answers every request with :attr:`reply`; the body echoes the Authorization header."""

    reply: ClassVar[dict[str, Any]] = {"status": 500, "headers": {}}

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        status = int(self.reply["status"])
        body = json.dumps(
            {"error": f"echo: {self.headers.get('Authorization', '')}"},
            ensure_ascii=False,
        ).encode()
        self.send_response(status)
        for name, value in self.reply["headers"].items():
            self.send_header(name, value)
        no_body = status in (204, 304)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "0" if no_body else str(len(body)))
        self.end_headers()
        if not no_body:
            self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Reply)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _batch() -> Batch:
    event = BatchEvent(
        1,
        uuid7(),
        "81234567890123456789",
        "cn20",
        "ship",
        "B1",
        "2026-11-23T10:00:00.000+08:00",
        "t",
    )
    return Batch(uuid7(), (event,), 0)


async def _trace_error(url: str) -> Exception | None:
    client = TraceApiClient(
        SyncConfig(url=url, gzip=False, read_timeout_s=5.0), token=TOKEN, device_id="d"
    )
    try:
        await client.send_batch(_batch())
    except Exception as exc:
        return exc
    finally:
        await client.aclose()
    return None


async def _epcis_error(url: str) -> Exception | None:
    document = EpcisConfig(
        read_point="urn:epc:id:sgln:0614141.00777.0",
        biz_location="urn:epc:id:sgln:0614141.00888.0",
    )
    client = EpcisCaptureClient(
        EpcisCaptureConfig(url=url, document=document, read_timeout_s=5.0), token=TOKEN
    )
    events = scan_events(_batch().events[0], document)
    try:
        await client.capture(events)
    except Exception as exc:
        return exc
    finally:
        await client.aclose()
    return None


def _expected(status: int, retry_after: bool) -> type[Exception]:
    """The rule, written out: what each status means to the sync loop."""
    if status == 429 or (status == 503 and retry_after):
        return RateLimitedError
    if status in (401, 403):
        return AuthError
    if status == 413:
        return BatchTooLargeError
    if status in (408, 425) or status >= 500:
        return ServiceError
    if 200 <= status < 300:
        return ProtocolError
    return BatchRejectedError


# 200 is the answer both clients expect here; every other status a server may send.
STATUSES = st.integers(201, 599)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(status=STATUSES, retry_after=st.booleans())
async def test_both_http_sinks_map_every_status_alike_and_never_show_the_token(
    server: str, status: int, retry_after: bool
) -> None:
    _Reply.reply = {"status": status, "headers": {"Retry-After": "3"} if retry_after else {}}
    want = _expected(status, retry_after)
    errors = [await _trace_error(server)]
    if status not in (400, 409):
        # To an EPCIS capture these two are the repository refusing the document's
        # events (settled per event, docs/platforms.md), not a failure of the request.
        errors.append(await _epcis_error(server))
    for error in errors:
        assert type(error) is want, (status, error)
        assert isinstance(error, SyncError)
        assert TOKEN not in str(error)
        if want in (RateLimitedError, ServiceError) and retry_after:
            assert error.retry_after == 3.0
        if want is ServiceError:
            assert getattr(error, "status_code", None) == status


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


async def test_a_dead_link_is_a_network_error_for_both_sinks() -> None:
    url = f"http://127.0.0.1:{_dead_port()}"
    trace, epcis = await _trace_error(url), await _epcis_error(url)
    assert isinstance(trace, NetworkError)
    assert str(trace).startswith("network error sending batch")
    assert isinstance(epcis, NetworkError)
    assert str(epcis).startswith("network error on EPCIS POST /capture")


@given(
    token=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
    before=st.text(max_size=40),
    after=st.text(max_size=40),
)
def test_redaction_leaves_no_copy_of_the_token(token: str, before: str, after: str) -> None:
    text = redact(f"{before}{token}{after}{token}", token)
    assert token not in text.replace("<token>", "\0")
    assert redact(before, "") == before


def test_a_status_error_names_what_was_sent_and_the_service() -> None:
    reply = httpx.Response(413, request=httpx.Request("POST", "https://epcis.test/capture"))
    error = status_error(reply, "limit 500", sent="capture of 3 events", token="", prefix="EPCIS: ")
    assert str(error) == "EPCIS: capture of 3 events too large (413): limit 500"


def test_backoff_doubles_to_its_ceiling_and_jitters_only_below_it() -> None:
    import random

    assert [backoff_delay(n, 0.5, 5.0) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert backoff_delay(200, 30.0, float("inf")) == 30.0 * 2**30  # the exponent is capped
    rng = random.Random(7)
    for n in range(40):
        assert 0 <= backoff_delay(n, 0.5, 10.0, rng) <= backoff_delay(n, 0.5, 10.0)
