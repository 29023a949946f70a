"""The Trace API v1 web application (Starlette) in front of a :class:`TraceStore`.

The event loop only does HTTP: the token check, fault hooks, and reading the
body within ``max_body_bytes`` and ``body_timeout_s``.  Decompression, JSON
parsing, validation and the SQLite transaction run together in one
worker-thread call per batch.  Decompression is linear in the body's size,
with at most :data:`MAX_GZIP_MEMBERS` members and ``max_body_bytes`` inflated.

An answer given before the request's body was read to its end (a 401, a 413,
a 408) says ``Connection: close``, so uvicorn closes the connection after it
instead of reading whatever the client keeps sending.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scanner_agent.traceserver._faults import Faults
from scanner_agent.traceserver._ingest import BatchStore, DatabaseError, error_body
from scanner_agent.traceserver._openapi import openapi_json
from scanner_agent.traceserver._protocol import RequestRefused
from scanner_agent.traceserver._tokens import PREFIX

__all__ = [
    "DEFAULT_BODY_TIMEOUT_S",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_EVENTS",
    "EVENTS_PAGE_DEFAULT",
    "EVENTS_PAGE_MAX",
    "MAX_GZIP_MEMBERS",
    "create_app",
    "gunzip",
]

log = logging.getLogger("scanner_agent.traceserver")

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest batch body, compressed and decompressed: 8 MiB."""
DEFAULT_MAX_EVENTS = 50_000
"""Most events in one batch."""
DEFAULT_BODY_TIMEOUT_S = 30.0
"""Longest a request's body may take to arrive once its head is in: 8 MiB at 2 Mbit/s."""
MAX_GZIP_MEMBERS = 64
"""Most gzip members in one body (clients send one; concatenated files a few)."""
_GZIP_CHUNK = 64 * 1024
"""Compressed bytes handed to zlib at a time (what a member may cost beyond its own size)."""
EVENTS_PAGE_DEFAULT = 1000
"""``GET /v1/events`` page size when ``limit`` is not given."""
EVENTS_PAGE_MAX = 10_000
"""Largest ``GET /v1/events`` page; a bigger ``limit`` is lowered to this."""

_JSON = "application/json"
_ANY_DEVICE = ""
"""The caller holds the shared token: its batches may carry any ``device_id``."""
_DOCK_PREFIX = PREFIX.encode("ascii")
_UNAUTHORIZED = "missing or invalid bearer token"
_CHALLENGE: Mapping[str, str] = {"WWW-Authenticate": "Bearer"}
_CURSOR = re.compile(r"[0-9]{1,18}")
_LIMIT = re.compile(r"[0-9]{1,9}")
_FAULT_MESSAGES: Mapping[int, str] = {
    429: "too many requests (simulated)",
    503: "service unavailable (simulated)",
}


class _CodeConvertor(Convertor[str]):
    """The rest of the path, whatever it holds: Starlette's ``{…:path}`` is ``.*``, which stops
    at a line break, so a stored ``ma`` code holding one was not found (404)."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("trace_code", _CodeConvertor())


def _json_response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body, status_code=status, headers=headers, media_type=_JSON)


def _compact(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return _json_response(status, error_body(message), headers)


def gunzip(data: bytes, limit: int, *, max_members: int = MAX_GZIP_MEMBERS) -> bytes:
    """Decompress a gzip body of one or more members, never producing more than ``limit`` bytes.

    Linear in ``len(data)``: zlib is fed slices of at most :data:`_GZIP_CHUNK`
    bytes of a memoryview, so the input it copies at a member's end (its
    ``unused_data``) is at most one slice, never the rest of the body, and
    there are at most ``max_members`` members.  (Feeding it the whole rest at
    each member made 414,187 empty members cost 92 s of CPU.)

    Raises:
        RequestRefused: 400 for bytes that are not gzip, a truncated member or
            more than ``max_members``; 413 for more than ``limit`` bytes inflated.
    """
    view = memoryview(data)
    out = bytearray()
    pos = 0
    for _member in range(max_members):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while not inflater.eof:
            if pos >= len(data):
                raise RequestRefused(400, "body is not valid gzip: truncated")
            chunk = view[pos : pos + _GZIP_CHUNK]
            pos += len(chunk)
            try:
                # max_length bounds the output: a gzip bomb stops at limit + 1 bytes.
                out += inflater.decompress(chunk, limit - len(out) + 1)
            except zlib.error as exc:
                raise RequestRefused(400, f"body is not valid gzip: {exc}") from None
            if len(out) > limit:
                raise RequestRefused(413, f"decompressed body larger than {limit} bytes")
        pos -= len(inflater.unused_data)  # the next member starts in this slice
        if pos == len(data):
            return bytes(out)
    raise RequestRefused(400, f"body is not valid gzip: more than {max_members} members")


class _CloseUnreadBodies:
    """ASGI middleware: an answer sent before the request body was read to its end closes.

    uvicorn keeps a connection open after such an answer and throws away the
    body bytes that still arrive, re-arming its keep-alive timer on each one:
    a client refused with 401 could trickle its announced 100 MB for ever.
    ``Connection: close`` makes uvicorn close the connection once the answer is out.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _declares_body(scope["headers"]):
            await self.app(scope, receive, send)
            return
        ended = False

        async def tracked_receive() -> Message:
            nonlocal ended
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                ended = True
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not ended:
                headers = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, tracked_receive, closing_send)


def _declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body as it arrives, refused (413) as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise RequestRefused(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRefused(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class _Limits:
    """What one request may cost: see :func:`create_app`."""

    max_body_bytes: int
    max_events: int
    body_timeout_s: float


class _TraceApi:
    """The Trace API v1 endpoints over one store, its limits and its fault hooks.

    ``expected`` is the shared bearer token's bytes (None: only dock tokens open it).
    """

    def __init__(
        self,
        store: BatchStore,
        expected: bytes | None,
        limits: _Limits,
        reject: frozenset[str],
        faults: Faults,
    ) -> None:
        self.store = store
        self.expected = expected
        self.limits = limits
        self.reject = reject
        self.faults = faults
        self.document = openapi_json()

    async def caller(self, request: Request) -> str | None:
        """Who sends: :data:`_ANY_DEVICE` for the shared token, a dock token's device, or None."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        # Header values arrive decoded as Latin-1: re-encode to get the raw bytes, and
        # compare them exactly (constant time): only the spaces after the scheme go
        # (RFC 9110 11.4, 1*SP); str.strip() would also drop a no-break space or a
        # vertical tab.  The presented token is never logged.
        presented = credentials.lstrip(" ").encode("latin-1")
        if self.expected is not None and hmac.compare_digest(presented, self.expected):
            return _ANY_DEVICE
        if not presented.startswith(_DOCK_PREFIX) or not presented.isascii():
            return None
        return await run_in_threadpool(self.store.device_for_token, presented.decode("ascii"))

    def process(self, key: str, body: bytes, gzipped: bool, device: str) -> tuple[int, bytes]:
        """Worker thread: decompress, parse, validate, store."""
        if gzipped:
            try:
                body = gunzip(body, self.limits.max_body_bytes)
            except RequestRefused as exc:
                return exc.status, error_body(exc.message)
        return self.store.ingest_body(
            key,
            body,
            reject_codes=self.reject,
            max_events=self.limits.max_events,
            device=device or None,
        )

    async def post_batch(self, request: Request) -> Response:
        # Raw header bytes as UTF-8, like the body's batch_id; only the spaces and tabs around
        # them go (RFC 9110 5.5): str.strip() of the Latin-1 text would also take the 0x85 or
        # 0xA0 that ends the UTF-8 of "Å" or "à", and the key would no longer match.
        raw_key = request.headers.get("idempotency-key", "").encode("latin-1").strip(b" \t")
        key = raw_key.decode("utf-8", "replace")
        status, reply, headers = await self.handle_batch(request, key)
        if status != 200:
            log.debug(
                "batch %s: %d %s", key or "(no key)", status, reply.decode("utf-8", "replace")
            )
        return _json_response(status, reply, headers)

    async def handle_batch(
        self, request: Request, key: str
    ) -> tuple[int, bytes, Mapping[str, str] | None]:
        """``(status, body, headers)`` for a batch request, in the order the checks are made."""
        device = await self.caller(request)
        if device is None:
            return 401, error_body(_UNAUTHORIZED), _CHALLENGE
        fault = self.faults.take()
        if fault is not None:
            message = _FAULT_MESSAGES.get(fault.status, "simulated failure")
            retry = None if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            return fault.status, error_body(message), retry
        if not key:
            return 400, error_body("Idempotency-Key header is required"), None
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip"):
            return 415, error_body(f"unsupported Content-Encoding: {encoding}"), None
        timeout = self.limits.body_timeout_s
        try:
            async with asyncio.timeout(timeout):
                body = await _read_body(request, self.limits.max_body_bytes)
        except TimeoutError:
            return 408, error_body(f"request body not received within {timeout:g} s"), None
        except RequestRefused as exc:
            return exc.status, error_body(exc.message), None
        except ClientDisconnect:
            return 400, error_body("client disconnected before the body was complete"), None
        gzipped = encoding != "identity"
        status, reply = await run_in_threadpool(self.process, key, body, gzipped, device)
        return status, reply, None

    async def get_code(self, request: Request) -> Response:
        if await self.caller(request) is None:
            return _unauthorized()
        code: str = request.path_params["code"]

        def lookup() -> bytes:  # worker thread: query and encode off the event loop
            return _compact({"code": code, "events": self.store.events_for_code(code)})

        return _json_response(200, await run_in_threadpool(lookup))

    async def get_events(self, request: Request) -> Response:
        if await self.caller(request) is None:
            return _unauthorized()
        after = request.query_params.get("after", "0")
        if _CURSOR.fullmatch(after) is None:
            return _error(400, "after must be a cursor returned by this endpoint")
        limit_text = request.query_params.get("limit", str(EVENTS_PAGE_DEFAULT))
        if _LIMIT.fullmatch(limit_text) is None or int(limit_text) < 1:
            return _error(400, f"limit must be an integer from 1 to {EVENTS_PAGE_MAX}")
        limit = min(int(limit_text), EVENTS_PAGE_MAX)

        def page() -> bytes:  # worker thread: query and encode off the event loop
            events, last = self.store.events_after(int(after), limit)
            return _compact({"events": events, "next": None if last is None else str(last)})

        return _json_response(200, await run_in_threadpool(page))

    async def health(self, request: Request) -> Response:
        return _json_response(200, b'{"status":"ok"}')

    async def openapi(self, request: Request) -> Response:
        """``docs/trace-api.openapi.yaml`` as JSON; open like ``/v1/health``."""
        return _json_response(200, self.document)


def _unauthorized() -> Response:
    return _error(401, _UNAUTHORIZED, _CHALLENGE)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, exc.detail, exc.headers)


UNAVAILABLE_RETRY_AFTER_S: Final = 5
"""Retry-After of a 503 answered while the store's database cannot serve."""


async def _database_error(request: Request, exc: Exception) -> Response:
    log.warning("%s %s: %s", request.method, request.url.path, exc)  # the detail stays here
    return _error(
        503,
        "the trace store is unavailable, retry later",
        {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    return _error(500, "internal server error")


def create_app(
    store: BatchStore,
    token: str | None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_events: int = DEFAULT_MAX_EVENTS,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    reject_codes: frozenset[str] = frozenset(),
    faults: Faults | None = None,
) -> Starlette:
    """The Trace API v1 application serving ``store``; see ``docs/trace-api.md``.

    ``token`` is the shared bearer token (None: none, only per-dock tokens); every
    endpoint but ``/v1/health`` and ``/openapi.json`` (the API's OpenAPI document) requires it or a live dock token of ``store``
    (``trace-server token add``), whose batches must carry its own ``device_id``.
    A batch body must arrive within ``body_timeout_s`` of its request's head
    (else 408).  ``reject_codes`` are answered ``rejected`` ("code not registered on the
    platform"); ``faults`` (default: a new, unarmed :class:`Faults`, reachable as
    ``app.state.faults``) makes batch requests fail on demand.
    """
    if token is not None and not token:
        raise ValueError("token must not be empty")
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be >= 1, not {max_body_bytes}")
    if max_events < 1:
        raise ValueError(f"max_events must be >= 1, not {max_events}")
    if not body_timeout_s > 0:
        raise ValueError(f"body_timeout_s must be > 0, not {body_timeout_s}")
    api = _TraceApi(
        store,
        None if token is None else token.encode("utf-8"),
        _Limits(max_body_bytes, max_events, body_timeout_s),
        frozenset(reject_codes),
        Faults() if faults is None else faults,
    )
    app = Starlette(
        routes=[
            Route("/v1/batches", api.post_batch, methods=["POST"]),
            Route("/v1/codes/{code:trace_code}", api.get_code, methods=["GET"]),
            Route("/v1/events", api.get_events, methods=["GET"]),
            Route("/v1/health", api.health, methods=["GET"]),
            Route("/openapi.json", api.openapi, methods=["GET"]),
        ],
        exception_handlers={
            HTTPException: _http_error,
            DatabaseError: _database_error,
            Exception: _server_error,
        },
        middleware=[Middleware(_CloseUnreadBodies)],
    )
    app.state.store = store
    app.state.faults = api.faults
    return app
