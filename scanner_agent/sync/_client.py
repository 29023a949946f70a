"""Trace API v1 client: one batch in, per-event results out (httpx).

All httpx failures are mapped here, and only here, to the agent's
:class:`scanner_agent.errors.SyncError` tree, so the sync loop decides on
retry/stop/dead-letter from *our* types.  The token is sent but never logged
or put in an exception message.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import ssl
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from scanner_agent import __version__
from scanner_agent.config import SyncConfig
from scanner_agent.errors import (
    AuthError,
    BatchRejectedError,
    BatchTooLargeError,
    ConfigError,
    ProtocolError,
    RateLimitedError,
    TransientSyncError,
)
from scanner_agent.outbox import Batch, EventResult, Outbox
from scanner_agent.sync._sinks import Admission

log = logging.getLogger(__name__)

TRACE_API_ADMISSION = Admission(
    platform="the trace service",
    schemes=frozenset({"cn20", "gs1", "ma"}),
    takes="20-digit trace codes, GS1 and MA codes",
)
"""Trace API v1 takes every scheme the agent parses, with or without a bill (docs/trace-api.md)."""

RESULT_STATUSES = frozenset({"accepted", "duplicate", "rejected"})
_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


class NetworkError(TransientSyncError):
    """The service could not be reached, or did not answer in time (no HTTP status)."""


class ServiceError(TransientSyncError):
    """The service answered with a status worth retrying (5xx, 408, 425)."""

    def __init__(self, message: str, *, status_code: int, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status_code = status_code


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), or None.

    >>> parse_retry_after("7")
    7.0
    >>> parse_retry_after("soon") is None
    True
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    ahead = date_offset_s(value, now or datetime.now(UTC))  # now minus the date
    return None if ahead is None else max(0.0, -ahead)


def date_offset_s(date_header: str | None, now: datetime) -> float | None:
    """How far ``now`` (this box's clock) is ahead of an HTTP ``Date`` header, in seconds.

    Negative when the box is behind; None without a readable header.

    >>> date_offset_s("Sun, 06 Nov 1994 08:49:37 GMT", datetime(1994, 11, 6, 8, 59, 37, tzinfo=UTC))
    600.0
    >>> date_offset_s("soon", datetime.now(UTC)) is None
    True
    """
    if not date_header:
        return None
    try:
        theirs = parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if theirs.tzinfo is None:
        theirs = theirs.replace(tzinfo=UTC)
    return (now - theirs).total_seconds()


def build_ssl_context(cfg: SyncConfig) -> ssl.SSLContext | bool:
    """The TLS settings: verification on unless turned off, optional CA bundle and mTLS.

    Raises:
        ConfigError: a CA bundle or client certificate cannot be loaded.
    """
    if not cfg.verify_tls:
        return False
    try:
        ctx = ssl.create_default_context(cafile=cfg.ca_bundle or None)
        if cfg.client_cert:
            ctx.load_cert_chain(cfg.client_cert, cfg.client_key or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"sync: failed to load TLS material: {exc}") from exc
    return ctx


_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_ACCEPTED = EventResult("accepted", None)
"""The common verdict, shared: results are immutable and a batch has thousands of them."""


def encode_batch(batch: Batch, device_id: str) -> bytes:
    """The JSON body of ``POST /v1/batches`` for a leased batch (compact UTF-8)."""
    if batch.events_json is not None:
        # The lease rendered the events already (in SQLite, off the GIL): wrap them.
        head = _to_json(
            {
                "batch_id": batch.batch_id,
                "device_id": device_id,
                "sent_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
        )
        return f'{head[:-1]},"events":{batch.events_json}}}'.encode()
    # A batch not leased by Outbox.lease (tests, other sinks' batches): encode it here.
    events = [e.to_wire() for e in batch.events]
    body = {
        "batch_id": batch.batch_id,
        "device_id": device_id,
        "sent_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "events": events,
    }
    return _to_json(body).encode("utf-8")


def decode_results(batch: Batch, content: bytes) -> dict[str, EventResult]:
    """Check a 200 reply against the batch and return results by event id.

    Raises:
        ProtocolError: bad JSON, wrong batch id, or results that do not cover
            exactly the batch's events with known statuses.
    """
    try:
        reply = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            f"Failed to parse reply to batch {batch.batch_id} as JSON: {exc}"
        ) from exc
    if not isinstance(reply, dict) or not isinstance(reply.get("results"), list):
        raise ProtocolError(f"Failed to read reply to batch {batch.batch_id}: no results list")
    if reply.get("batch_id") != batch.batch_id:
        raise ProtocolError(
            f"Failed to match reply to batch {batch.batch_id}: it names batch {reply.get('batch_id')!r}"
        )
    expected = {e.event_id for e in batch.events}
    out: dict[str, EventResult] = {}
    for item in reply["results"]:
        if not isinstance(item, dict):
            raise ProtocolError(
                f"Failed to read reply to batch {batch.batch_id}: result is not an object"
            )
        event_id, status, reason = item.get("event_id"), item.get("status"), item.get("reason")
        if event_id not in expected:
            raise ProtocolError(
                f"Failed to match reply to batch {batch.batch_id}: unknown event {event_id!r}"
            )
        if event_id in out:
            raise ProtocolError(
                f"Failed to read reply to batch {batch.batch_id}: event {event_id} twice"
            )
        if status == "accepted" and reason is None:
            out[event_id] = _ACCEPTED
        elif status in RESULT_STATUSES:
            out[event_id] = EventResult(str(status), None if reason is None else str(reason))
        else:
            raise ProtocolError(
                f"Failed to read reply to batch {batch.batch_id}: status {status!r}"
            )
    if len(out) != len(expected):
        raise ProtocolError(
            f"Failed to match reply to batch {batch.batch_id}: "
            f"{len(expected) - len(out)} of {len(expected)} events have no result"
        )
    return out


def _error_text(response: httpx.Response) -> str:
    try:
        data: Any = response.json()
        if isinstance(data, dict) and "error" in data:
            return str(data["error"])[:300]
    except ValueError:
        pass
    return response.text[:300].strip() or response.reason_phrase


class BearerAuth:
    """A bearer token on an httpx client, swappable in place (a re-read token file).

    The token is only ever put in the ``Authorization`` header, never in a
    log line or an exception.  Shared by the HTTP sinks' clients.
    """

    _token: str
    _client: httpx.AsyncClient

    def set_token(self, token: str) -> bool:
        """Use ``token`` from the next request on; True when it differs from the one in use.

        An empty token sends no ``Authorization`` header.
        """
        token = token.strip()
        if token == self._token:
            return False
        self._token = token
        if token:
            self._client.headers["Authorization"] = f"Bearer {token}"
        else:
            self._client.headers.pop("Authorization", None)
        return True


class TraceApiClient(BearerAuth):
    """A long-lived HTTP client for one trace service.

    One :class:`httpx.AsyncClient` for the life of the agent: connections are
    kept alive between batches (one per batch in flight), every phase has its
    own timeout, and TLS is verified unless the config says otherwise.
    """

    admission = TRACE_API_ADMISSION

    def __init__(
        self,
        cfg: SyncConfig,
        *,
        token: str,
        device_id: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.cfg = cfg
        self.device_id = device_id
        self._token = ""
        headers = {"User-Agent": f"scanner-agent/{__version__}", "Content-Type": "application/json"}
        connections = cfg.max_in_flight + 1  # one per batch in flight, one for health checks
        self._client = httpx.AsyncClient(
            base_url=cfg.url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(
                connect=cfg.connect_timeout_s,
                read=cfg.read_timeout_s,
                write=cfg.write_timeout_s,
                # A free connection is always there (one per batch in flight); waiting
                # for one longer than a connect would take means something is stuck.
                pool=cfg.connect_timeout_s,
            ),
            limits=httpx.Limits(
                max_connections=connections,
                max_keepalive_connections=connections,
                keepalive_expiry=30.0,
            ),
            verify=build_ssl_context(cfg),
            transport=transport,
        )
        self.set_token(token)

    def __repr__(self) -> str:
        return f"TraceApiClient(url={self.cfg.url!r}, device_id={self.device_id!r})"

    def set_base_url(self, url: str) -> None:
        """Send the next requests to ``url`` (requests already sent finish where they went)."""
        self._client.base_url = httpx.URL(url.rstrip("/"))
        self.cfg = dataclasses.replace(self.cfg, url=url)

    async def aclose(self) -> None:
        """Close connections."""
        await self._client.aclose()

    def lease(self, outbox: Outbox, limit: int, *, lease_s: float, max_bytes: int) -> Batch | None:
        """The next batch: the oldest sendable rows, up to ``limit`` events and ``max_bytes``.

        Trace API v1 takes any events in any batch, so this is the outbox's own lease.
        """
        return outbox.lease(limit, lease_s=lease_s, max_bytes=max_bytes)

    def encode(self, batch: Batch) -> bytes:
        """The request body for ``batch``, gzip-compressed when configured."""
        body = encode_batch(batch, self.device_id)
        if self.cfg.gzip:
            body = gzip.compress(body, compresslevel=self.cfg.gzip_level, mtime=0)
        return body

    async def send_batch(self, batch: Batch, body: bytes | None = None) -> dict[str, EventResult]:
        """Deliver one batch and return the service's verdict per event.

        ``body`` is :meth:`encode`'s result when the caller prepared it already
        (the sync loop encodes on the outbox thread).

        Raises:
            NetworkError: connection failure, reset, truncated reply or timeout.
            ServiceError: 408/425/5xx (with ``retry_after`` when the service said).
            RateLimitedError: 429 (or 503 with ``Retry-After``).
            AuthError: 401/403.
            BatchTooLargeError: 413.
            BatchRejectedError: any other 4xx.
            ProtocolError: a 200 whose body does not match the batch.
        """
        if body is None:
            body = self.encode(batch)
        return decode_results(batch, await self.post_batch(batch.batch_id, body))

    async def post_batch(self, batch_id: str, body: bytes) -> bytes:
        """``POST /v1/batches`` with a body from :meth:`encode`; the raw body of the 200 reply.

        Raises:
            The errors of :meth:`send_batch` but :class:`ProtocolError`.
        """
        headers = {"Idempotency-Key": batch_id}
        if self.cfg.gzip:
            headers["Content-Encoding"] = "gzip"
        try:
            response = await self._client.post("/v1/batches", content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise NetworkError(f"timeout sending batch {batch_id}: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            # TransportError (refused, reset, TLS, truncated reply) and decoding errors.
            raise NetworkError(
                f"network error sending batch {batch_id}: {type(exc).__name__}: {exc}"
            ) from exc
        status = response.status_code
        if status == 200:
            return response.content
        detail = _error_text(response)
        if self._token and self._token in detail:  # a proxy's error page echoing our headers
            detail = detail.replace(self._token, "<token>")
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429 or (status == 503 and retry_after is not None):
            raise RateLimitedError(f"service busy ({status}): {detail}", retry_after=retry_after)
        if status in (401, 403):
            raise AuthError(f"service refused the token ({status}): {detail}")
        if status == 413:
            raise BatchTooLargeError(f"batch {batch_id} too large (413): {detail}")
        if status in _RETRYABLE or status >= 500:
            raise ServiceError(
                f"service error ({status}): {detail}", status_code=status, retry_after=retry_after
            )
        raise BatchRejectedError(f"service refused batch ({status}): {detail}", status_code=status)

    async def health(self) -> bool:
        """True when ``GET /v1/health`` answers 200 (for doctor and status)."""
        try:
            return (await self._client.get("/v1/health")).status_code == 200
        except httpx.HTTPError:
            return False
