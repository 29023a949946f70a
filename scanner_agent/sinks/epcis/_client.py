"""GS1 EPCIS 2.0 capture client: scans in, per-scan verdicts out (httpx).

One :meth:`EpcisCaptureClient.send_events` call builds an ``EPCISDocument``
(:mod:`scanner_agent.sinks.epcis._document`, deterministic ``eventID`` s), sends it
with ``POST {url}/capture``, follows the ``202``'s ``Location`` to the capture
job and polls it, with growing pauses and an overall limit, until ``running``
is false; then :func:`~scanner_agent.sinks.epcis._job.settle_job` turns the
job into one :class:`~scanner_agent.outbox.EventResult` per scan.  The results
are keyed by the outbox's ``event_id``, so the sync loop settles them like
Trace API v1 results.

Failures raise the sync loop's own errors, mapped by the shared HTTP layer
(:func:`~scanner_agent.sync.transport_error`, :func:`~scanner_agent.sync.status_error`)
as for every sink, so retry, backoff, halving and stopping work unchanged:

* connection failure, reset, timeout: :class:`~scanner_agent.sync.NetworkError`;
* 408/425/5xx, a capture job that failed on the server's side:
  :class:`~scanner_agent.sync.ServiceError` /
  :class:`~scanner_agent.sinks.epcis._job.ServerProblemError` (both transient);
* 429 (or 503 with ``Retry-After``): :class:`~scanner_agent.kernel.RateLimitedError`;
* 401/403: :class:`~scanner_agent.kernel.AuthError`;
* 413 (``GS1-EPCIS-Capture-Limit`` exceeded): :class:`~scanner_agent.kernel.BatchTooLargeError`;
* another 2xx than the one expected: :class:`~scanner_agent.kernel.ProtocolError`;
* other 4xx but 400/409: :class:`~scanner_agent.kernel.BatchRejectedError`;
* a job still running at the time limit: :class:`~scanner_agent.kernel.TransientSyncError`;
* a reply that is not a capture job: :class:`~scanner_agent.kernel.ProtocolError`.

A ``400``/``409`` answer to the ``POST`` is the repository refusing the
document before any job exists ("all events are rejected"): it is settled like
a failed ``rollback`` job, so the events it names get their verdicts and the
others are captured again.

Resending is always safe: an event the repository already holds comes back as
a duplicate error, which counts as delivered.  The bearer token is sent in the
``Authorization`` header only and never logged or put in an error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

import httpx

from scanner_agent.kernel import ProtocolError, TransientSyncError, backoff_delay
from scanner_agent.outbox import Batch, BatchEvent, EventResult
from scanner_agent.sinks._settings import check_url
from scanner_agent.sinks.epcis._document import Child, EpcisConfig, build_document, scan_events
from scanner_agent.sinks.epcis._job import (
    CaptureJob,
    CaptureProblem,
    JobOutcome,
    parse_capture_job,
    parse_problem,
    settle_job,
)
from scanner_agent.sinks.epcis._settings import check_capture
from scanner_agent.sync import (
    USER_AGENT,
    BearerAuth,
    status_error,
    transport_error,
)

__all__ = ["EpcisCaptureClient", "EpcisCaptureConfig", "ErrorBehaviour"]

log = logging.getLogger(__name__)

_JSON = "application/json"
ErrorBehaviour = Literal["proceed", "rollback"]


@dataclass(frozen=True, slots=True)
class EpcisCaptureConfig:
    """One EPCIS 2.0 repository (the ``[epcis]`` table and the timeouts of ``[sync]``)."""

    url: str
    """Base URL of the repository's REST binding; documents go to ``{url}/capture``."""
    document: EpcisConfig
    """How scans become events (read point, location, URI prefixes)."""
    content_type: str = _JSON
    """``application/json``, the request type the REST binding declares for ``/capture``;
    ``application/ld+json`` for a repository that wants JSON-LD named as such."""
    error_behaviour: ErrorBehaviour = "proceed"
    """``GS1-Capture-Error-Behaviour``: ``proceed`` stores the good events of a document
    with a bad one; ``rollback`` (the binding's default) stores none, and the good ones
    are captured again without the bad ones."""
    poll_initial_s: float = 0.5
    """First pause before asking for the capture job; doubles each time ..."""
    poll_max_s: float = 5.0
    """... up to this."""
    poll_timeout_s: float = 120.0
    """Longest wait for one capture job to finish; then the batch is retried later."""
    max_rounds: int = 4
    """Most captures of what a rollback left unstored, per call."""
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    write_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        check_url("epcis.url", self.url)
        check_capture(
            content_type=self.content_type,
            error_behaviour=self.error_behaviour,
            poll_initial_s=self.poll_initial_s,
            poll_max_s=self.poll_max_s,
            poll_timeout_s=self.poll_timeout_s,
            max_rounds=self.max_rounds,
        )


@dataclass
class _Pending:
    """The events of one ``send_events`` call, by EPCIS ``eventID``."""

    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    owners: dict[str, list[str]] = field(default_factory=dict)
    """EPCIS ``eventID`` -> outbox ``event_id`` s (two scans with equal content share one)."""


def _combine(found: Sequence[tuple[str, EventResult]]) -> EventResult:
    """One scan's verdict from those of its events (an ObjectEvent, maybe an AggregationEvent).

    The scan is delivered only when the repository holds all of them: any
    rejection rejects the scan (naming the event type, so a refused carton
    aggregation is told apart from a refused scan); it is a duplicate only when
    every event was held already (a resend), else accepted.
    """
    if len(found) == 1:
        return found[0][1]
    for kind, result in found:
        if result.status == "rejected":
            return EventResult("rejected", f"{kind}: {result.reason or 'rejected'}")
    if all(result.status == "duplicate" for _kind, result in found):
        return found[0][1]
    return EventResult("accepted")


def _problems(response: httpx.Response) -> tuple[CaptureProblem, ...]:
    """The problem(s) in an error reply: one RFC 7807 object, or a list under ``errors``."""
    try:
        data: Any = response.json()
    except ValueError:
        return (CaptureProblem(title=response.text[:300].strip() or response.reason_phrase),)
    if isinstance(data, dict) and isinstance(data.get("errors"), list) and data["errors"]:
        return tuple(parse_problem(e) for e in data["errors"])
    problem = parse_problem(data)
    if problem.status is None:
        problem = CaptureProblem(
            type=problem.type,
            title=problem.title or response.reason_phrase,
            status=response.status_code,
            detail=problem.detail,
            instance=problem.instance,
        )
    return (problem,)


class EpcisCaptureClient(BearerAuth):
    """A long-lived client for one EPCIS 2.0 repository's capture interface.

    ``tls`` is what httpx calls ``verify``: ``True`` (the default) checks the
    certificate against the system store; pass
    ``scanner_agent.sync.build_ssl_context(sync_config)`` for a private CA or
    mutual TLS, ``False`` only in a lab.
    """

    def __init__(
        self,
        cfg: EpcisCaptureConfig,
        *,
        token: str = "",
        tls: ssl.SSLContext | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.cfg = cfg
        self._sleep = sleep
        self._token = ""
        self._client = httpx.AsyncClient(
            base_url=cfg.url.rstrip("/"),
            headers={
                "User-Agent": USER_AGENT,
                "Accept": f"{_JSON}, application/problem+json",
                "GS1-EPCIS-Version": "2.0.0",
                "GS1-CBV-Version": "2.0.0",
            },
            timeout=httpx.Timeout(
                connect=cfg.connect_timeout_s,
                read=cfg.read_timeout_s,
                write=cfg.write_timeout_s,
                pool=cfg.connect_timeout_s,
            ),
            verify=tls,
            transport=transport,
        )
        self.set_token(token)

    def __repr__(self) -> str:
        return f"EpcisCaptureClient(url={self.cfg.url!r})"

    async def aclose(self) -> None:
        """Close connections."""
        await self._client.aclose()

    # -- the sync loop's view ---------------------------------------------------

    async def send_batch(self, batch: Batch, body: bytes | None = None) -> dict[str, EventResult]:
        """:meth:`send_events` for a leased batch (``body`` is ignored: the document is built here)."""
        return await self.send_events(batch.events)

    async def send_events(
        self,
        events: Sequence[BatchEvent],
        *,
        children: Mapping[str, Sequence[Child]] | None = None,
    ) -> dict[str, EventResult]:
        """Capture ``events`` and return a verdict for each, by outbox ``event_id``.

        ``children`` maps the ``event_id`` of a carton's scan to its units: the
        scan then also goes as an ``AggregationEvent``, and its verdict covers
        both events (rejected if either is, duplicate only if both were held).

        A scan that cannot be expressed as EPCIS events (say an ``ma`` code) is
        rejected here with the reason and never sent.

        Raises:
            The errors listed in the module documentation.
        """
        results: dict[str, EventResult] = {}
        pending = _Pending()
        units = children or {}
        for scan in events:
            try:
                built = scan_events(scan, self.cfg.document, units.get(scan.event_id, ()))
            except ValueError as exc:
                results[scan.event_id] = EventResult("rejected", f"not an EPCIS event: {exc}")
                continue
            for event in built:
                eid = event["eventID"]
                pending.events.setdefault(eid, event)
                pending.owners.setdefault(eid, []).append(scan.event_id)
        by_event = await self._capture_all(list(pending.events), pending)
        verdicts: dict[str, list[tuple[str, EventResult]]] = {}
        for eid, result in by_event.items():
            for owner in pending.owners[eid]:
                verdicts.setdefault(owner, []).append((pending.events[eid]["type"], result))
        for owner, found in verdicts.items():
            results[owner] = _combine(found)
        return results

    async def _capture_all(self, ids: list[str], pending: _Pending) -> dict[str, EventResult]:
        """Capture ``ids``, then again whatever a rollback left unstored, for ``max_rounds``."""
        verdicts: dict[str, EventResult] = {}
        groups: list[tuple[str, ...]] = [tuple(ids)] if ids else []
        for _ in range(self.cfg.max_rounds):
            if not groups:
                return verdicts
            again: list[tuple[str, ...]] = []
            for group in groups:
                outcome = await self.capture([pending.events[e] for e in group])
                verdicts.update(outcome.results)
                again.extend(outcome.resend)
            groups = again
        if groups:
            left = sum(len(g) for g in groups)
            raise TransientSyncError(
                f"EPCIS capture: {left} events still not stored after {self.cfg.max_rounds} captures"
            )
        return verdicts

    # -- one document -------------------------------------------------------------

    async def capture(self, events: Sequence[dict[str, Any]]) -> JobOutcome:
        """``POST /capture`` one document of ready ``events`` and settle its capture job.

        Raises:
            The errors listed in the module documentation.
        """
        ids = [e["eventID"] for e in events]
        body = build_document([], self.cfg.document)
        body["epcisBody"]["eventList"] = list(events)
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": self.cfg.content_type,
            "GS1-Capture-Error-Behaviour": self.cfg.error_behaviour,
        }
        response = await self._request("POST", "/capture", content=content, headers=headers)
        status = response.status_code
        if status in (400, 409):
            # Refused on receipt: nothing stored, as a failed rollback job.
            job = CaptureJob(
                "",
                running=False,
                success=False,
                error_behaviour="rollback",
                errors=_problems(response),
            )
            return settle_job(job, ids)
        if status != 202:
            self._raise_for(response, f"capture of {len(ids)} events")
        location = response.headers.get("Location", "").strip()
        if not location:
            raise ProtocolError("EPCIS capture: 202 without a Location header")
        job = await self.wait_for_job(location)
        log.info(
            "EPCIS capture job %s: success=%s, %d errors, %d events",
            job.capture_id,
            job.success,
            len(job.errors),
            len(ids),
        )
        return settle_job(job, ids)

    async def wait_for_job(self, location: str) -> CaptureJob:
        """Poll the capture job at ``location`` until it has finished.

        Pauses start at ``poll_initial_s`` and double up to ``poll_max_s``;
        a ``Retry-After`` is honoured.  Transient failures of a poll are
        retried within ``poll_timeout_s``.

        Raises:
            TransientSyncError: still running (or unreachable) at ``poll_timeout_s``.
            AuthError, ProtocolError: as for :meth:`capture_job`.
        """
        deadline = time.monotonic() + self.cfg.poll_timeout_s
        last: str = "still running"
        polls = 0
        while True:
            wait = backoff_delay(polls, self.cfg.poll_initial_s, self.cfg.poll_max_s)
            polls += 1
            try:
                job = await self.capture_job(location)
            except TransientSyncError as exc:
                last = str(exc)
                if exc.retry_after is not None:
                    wait = max(wait, exc.retry_after)
            else:
                if not job.running:
                    return job
                last = f"capture job {job.capture_id} still running"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransientSyncError(
                    f"EPCIS capture: no final answer within {self.cfg.poll_timeout_s:g} s ({last})"
                )
            await self._sleep(min(wait, remaining))

    async def capture_job(self, location: str) -> CaptureJob:
        """One ``GET`` of the capture job at ``location`` (absolute, or relative to ``url``).

        Raises:
            NetworkError, ServiceError, RateLimitedError: worth another try.
            AuthError: 401/403.
            ProtocolError: 404, another status, or a body that is not a capture job.
        """
        response = await self._request("GET", location)
        if response.status_code != 200:
            if response.status_code == 404:
                raise ProtocolError(f"EPCIS capture job {location} not found (404)")
            self._raise_for(response, f"capture job {location}")
        try:
            data = response.json()
        except ValueError as exc:
            raise ProtocolError(f"EPCIS capture job {location}: reply is not JSON") from exc
        return parse_capture_job(data)

    # -- HTTP ---------------------------------------------------------------------

    async def _request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        try:
            return await self._client.request(method, url, **kw)
        except httpx.HTTPError as exc:
            raise transport_error(exc, f"on EPCIS {method} {url}") from exc

    def _raise_for(self, response: httpx.Response, what: str) -> NoReturn:
        """Raise the sync error for a reply that is neither 200/202 nor a document refusal."""
        raise status_error(
            response, _problems(response)[0].reason, sent=what, token=self._token, prefix="EPCIS: "
        )
