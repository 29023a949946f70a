"""Trace API v1 client: one batch in, per-event results out (httpx).

The client is the sink of ``sync.protocol = "trace-api"``: a Trace API batch is
the outbox's own lease and goes out as one ``POST``, so there is nothing for a
separate sink object to add.  Failures are mapped to the agent's
:class:`scanner_agent.kernel.SyncError` tree by the shared HTTP layer
(:mod:`scanner_agent.sync`: :func:`~scanner_agent.sync.transport_error`,
:func:`~scanner_agent.sync.status_error`), so the sync loop decides on
retry/stop/dead-letter from *our* types.  The token is sent but never logged
or put in an exception message.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx

from scanner_agent.outbox import Batch, EventResult, Outbox
from scanner_agent.sinks.trace_api._settings import TraceApiSettings
from scanner_agent.sinks.trace_api._wire import TRACE_API_ADMISSION, decode_results, encode_batch
from scanner_agent.sync import (
    USER_AGENT,
    BearerAuth,
    SyncObserver,
    build_ssl_context,
    status_error,
    transport_error,
)

__all__ = ["TraceApiClient"]

log = logging.getLogger(__name__)


def _error_text(response: httpx.Response) -> str:
    try:
        data: Any = response.json()
        if isinstance(data, dict) and "error" in data:
            return str(data["error"])[:300]
    except ValueError:
        pass
    return response.text[:300].strip() or response.reason_phrase


class TraceApiClient(BearerAuth):
    """A long-lived HTTP client for one trace service.

    One :class:`httpx.AsyncClient` for the life of the agent: connections are
    kept alive between batches (one per batch in flight), every phase has its
    own timeout, and TLS is verified unless the config says otherwise.
    """

    admission = TRACE_API_ADMISSION

    def __init__(
        self,
        cfg: TraceApiSettings,
        *,
        token: str,
        device_id: str,
        transport: httpx.AsyncBaseTransport | None = None,
        observers: Sequence[SyncObserver] = (),
    ) -> None:
        self.cfg = cfg
        self.url = cfg.url
        """Where batches go now (``sync.url``, or the URL of the last reload)."""
        self.device_id = device_id
        self.observers = observers
        """Told how long each ``POST /v1/batches`` took and how it ended (metrics)."""
        self._token = ""
        headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
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
        return f"TraceApiClient(url={self.url!r}, device_id={self.device_id!r})"

    def set_base_url(self, url: str) -> None:
        """Send the next requests to ``url`` (requests already sent finish where they went)."""
        self._client.base_url = httpx.URL(url.rstrip("/"))
        self.url = url

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
            ProtocolError: a 200 whose body does not match the batch, or another 2xx.
        """
        if body is None:
            body = self.encode(batch)
        return decode_results(batch, await self.post_batch(batch.batch_id, body))

    async def post_batch(self, batch_id: str, body: bytes) -> bytes:
        """``POST /v1/batches`` with a body from :meth:`encode`; the raw body of the 200 reply.

        Each :attr:`observers` is told how long it took and how it ended
        (``ok`` or the error's type), a cancelled request excepted.

        Raises:
            The errors of :meth:`send_batch` (:class:`ProtocolError` only for a 2xx but 200).
        """
        if not self.observers:
            return await self._post(batch_id, body)
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await self._post(batch_id, body)
        except asyncio.CancelledError:
            outcome = ""
            raise
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            if outcome:
                elapsed = time.perf_counter() - started
                for observe in self.observers:
                    try:
                        observe(elapsed, outcome)
                    except Exception:
                        log.exception("sync observer failed")

    async def _post(self, batch_id: str, body: bytes) -> bytes:
        headers = {"Idempotency-Key": batch_id}
        if self.cfg.gzip:
            headers["Content-Encoding"] = "gzip"
        try:
            response = await self._client.post("/v1/batches", content=body, headers=headers)
        except httpx.HTTPError as exc:
            # TransportError (refused, reset, TLS, truncated reply), timeouts, decoding errors.
            raise transport_error(exc, f"sending batch {batch_id}") from exc
        if response.status_code == 200:
            return response.content
        raise status_error(
            response, _error_text(response), sent=f"batch {batch_id}", token=self._token
        )

    async def health(self) -> bool:
        """True when ``GET /v1/health`` answers 200 (for doctor and status)."""
        try:
            return (await self._client.get("/v1/health")).status_code == 200
        except httpx.HTTPError:
            return False
