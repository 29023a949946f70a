"""A local EPCIS 2.0 repository (capture interface only), for tests and labs.

Real HTTP (Starlette under uvicorn in a thread, :class:`scanner_agent.asgi.ServerThread`):

* ``POST /capture``: checks the document (``type`` EPCISDocument,
  ``schemaVersion`` "2.0", ``epcisBody.eventList`` a list) and answers ``400``
  with an RFC 7807 problem when it is not one.  Otherwise it checks each event
  (``eventID``, ``type``, ``action`` ADD/OBSERVE/DELETE, ``eventTime``,
  ``eventTimeZoneOffset``), stores the good ones by ``eventID`` (each id at most
  once) and answers ``202`` with ``Location: /capture/<captureID>``.
* ``GET /capture/<captureID>``: the capture job, ``running`` for the first
  :attr:`EmulatorState.running_polls` polls, then final.
* ``GET /capture``: the capture jobs, newest first (what ``scanner-agent doctor``
  asks to check the link and the token).

An ``AggregationEvent`` with ``action`` ADD or DELETE must name its
``parentID``, and one with ADD at least one of ``childEPCs`` (EPCIS 2.0,
section 7.4.3); otherwise it is invalid.

Error conventions (the binding leaves them to the server, see
:mod:`scanner_agent.sinks.epcis`): each problem carries the event's
``eventID`` as ``instance`` and in ``detail``; an event whose ``eventID`` is
already stored (or repeated in the document) gives a problem with ``status``
409 and title ``Duplicate event``; an invalid event gives ``status`` 400,
type ``epcisException:ValidationException``.  ``GS1-Capture-Error-Behaviour``
is honoured: ``proceed`` stores the good events of a document with errors,
``rollback`` (the default, as in the binding) stores none of them.

Faults, armed on :attr:`EpcisEmulator.state` from any thread: ``fail_next``
(500), ``rate_limit_next`` (429 with ``Retry-After``), ``drop_next`` (store the
events, then cut the connection before the reply is complete: a lost reply),
``token`` (401 without ``Authorization: Bearer <token>``) and ``refuse_epcs``
(an event naming one of these EPCs is invalid, with the reason given: how a
repository refuses an identifier it does not know).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from scanner_agent.asgi import ServerThread

__all__ = ["EmulatorState", "EpcisEmulator", "create_app"]

_REQUIRED = ("eventID", "type", "action", "eventTime", "eventTimeZoneOffset")
_TYPES = frozenset(
    {
        "ObjectEvent",
        "AggregationEvent",
        "TransactionEvent",
        "TransformationEvent",
        "AssociationEvent",
    }
)
_ACTIONS = frozenset({"ADD", "OBSERVE", "DELETE"})
_VALIDATION = "epcisException:ValidationException"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Job:
    body: dict[str, Any]
    polls_left: int


@dataclass
class EmulatorState:
    """What the repository holds and the faults armed on it (guarded by ``lock``)."""

    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Stored events by ``eventID``."""
    jobs: dict[str, _Job] = field(default_factory=dict)
    captures: int = 0
    """``POST /capture`` requests that passed the token and fault checks."""
    polls: int = 0
    """``GET /capture/<id>`` requests answered with a job."""
    token: str = ""
    """Bearer token required on every request; empty = none."""
    running_polls: int = 1
    """Polls of a new job answered with ``running: true`` before the final state."""
    fail_next: int = 0
    """Answer the next N captures with 500."""
    rate_limit_next: int = 0
    """Answer the next N captures with 429 and ``Retry-After: <retry_after>``."""
    retry_after: int = 1
    drop_next: int = 0
    """Process the next N captures, then cut the connection mid-reply."""
    refuse_epcs: dict[str, str] = field(default_factory=dict)
    """EPC URI -> reason: an event with one of these in ``epcList``, ``parentID`` or
    ``childEPCs`` is refused as invalid with that reason."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def _problem(status: int, title: str, detail: str = "", instance: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"type": _VALIDATION, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    return body


def _event_problem(index: int, event: Any, refuse: Mapping[str, str]) -> dict[str, Any] | None:
    """Why ``event`` (number ``index`` in the list) cannot be captured, or None."""
    if not isinstance(event, dict):
        return _problem(400, "Invalid event", f"event #{index} is not an object")
    eid = event.get("eventID")
    eid = eid if isinstance(eid, str) else ""
    missing = [k for k in _REQUIRED if not isinstance(event.get(k), str) or not event.get(k)]
    if missing:
        what = f"event {eid}" if eid else f"event #{index}"
        return _problem(400, "Invalid event", f"{what}: missing {', '.join(missing)}", eid)
    if event["type"] not in _TYPES:
        return _problem(400, "Invalid event", f"event {eid}: unknown type {event['type']}", eid)
    if event["action"] not in _ACTIONS:
        return _problem(400, "Invalid event", f"event {eid}: bad action {event['action']}", eid)
    if event["type"] == "AggregationEvent" and event["action"] != "OBSERVE":
        if not isinstance(event.get("parentID"), str) or not event["parentID"]:
            return _problem(
                400, "Invalid event", f"event {eid}: {event['action']} needs parentID", eid
            )
        children = event.get("childEPCs")
        if event["action"] == "ADD" and (not isinstance(children, list) or not children):
            return _problem(400, "Invalid event", f"event {eid}: ADD needs childEPCs", eid)
    named = [*(event.get("epcList") or []), event.get("parentID"), *(event.get("childEPCs") or [])]
    for epc in named:
        if isinstance(epc, str) and epc in refuse:
            return _problem(400, "Invalid event", f"event {eid}: {epc}: {refuse[epc]}", eid)
    return None


class _DroppedReply(Response):
    """Headers and half a body, then the app returns: uvicorn closes the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [(b"content-length", b"64"), (b"location", b"/capture/lost")],
            }
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": True})


def create_app(state: EmulatorState) -> Starlette:
    """The capture interface as an ASGI app."""
    repository = _Repository(state)
    return Starlette(
        routes=[
            Route("/capture", repository.capture, methods=["POST"]),
            Route("/capture", repository.jobs, methods=["GET"]),
            Route("/capture/{capture_id}", repository.job, methods=["GET"]),
        ]
    )


def _unauthorised() -> JSONResponse:
    return JSONResponse(
        {"type": "epcisException:SecurityException", "title": "Unauthorized", "status": 401},
        status_code=401,
        media_type="application/problem+json",
    )


def _refuse(title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        _problem(400, title, detail), status_code=400, media_type="application/problem+json"
    )


class _Repository:
    """The capture interface's endpoints over one :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def authorised(self, request: Request) -> bool:
        return (
            not self.state.token
            or request.headers.get("authorization") == f"Bearer {self.state.token}"
        )

    async def capture(self, request: Request) -> Response:
        if not self.authorised(request):
            return _unauthorised()
        with self.state.lock:
            if self.state.rate_limit_next > 0:
                self.state.rate_limit_next -= 1
                return JSONResponse(
                    {"type": "epcisException:CaptureLimitExceeded", "title": "Too many requests"},
                    status_code=429,
                    headers={"Retry-After": str(self.state.retry_after)},
                )
            if self.state.fail_next > 0:
                self.state.fail_next -= 1
                return JSONResponse(
                    {"type": "epcisException:ImplementationException", "title": "Server error"},
                    status_code=500,
                )
            self.state.captures += 1
        try:
            doc = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _refuse("Invalid JSON", "the body is not JSON")
        if not isinstance(doc, dict) or doc.get("type") != "EPCISDocument":
            return _refuse("Invalid document", "type must be EPCISDocument")
        if doc.get("schemaVersion") != "2.0":
            return _refuse("Invalid document", 'schemaVersion must be "2.0"')
        body = doc.get("epcisBody")
        events = body.get("eventList") if isinstance(body, dict) else None
        if not isinstance(events, list):
            return _refuse("Invalid document", "epcisBody.eventList must be a list")
        behaviour = request.headers.get("gs1-capture-error-behaviour", "rollback").lower()
        job_body = self._capture(events, "proceed" if behaviour == "proceed" else "rollback")
        with self.state.lock:
            self.state.jobs[job_body["captureID"]] = _Job(job_body, self.state.running_polls)
            if self.state.drop_next > 0:
                self.state.drop_next -= 1
                return _DroppedReply()
        return Response(status_code=202, headers={"Location": f"/capture/{job_body['captureID']}"})

    def _capture(self, events: list[Any], behaviour: str) -> dict[str, Any]:
        """Check and store ``events``; the final capture job."""
        errors: list[dict[str, Any]] = []
        good: dict[str, dict[str, Any]] = {}
        with self.state.lock:
            for i, event in enumerate(events):
                problem = _event_problem(i, event, self.state.refuse_epcs)
                if problem is not None:
                    errors.append(problem)
                    continue
                eid = event["eventID"]
                if eid in self.state.events or eid in good:
                    errors.append(
                        _problem(409, "Duplicate event", f"event {eid} is already captured", eid)
                    )
                    continue
                good[eid] = event
            if behaviour == "proceed" or not errors:
                self.state.events.update(good)
        return {
            "captureID": uuid.uuid4().hex,
            "createdAt": _now(),
            "finishedAt": _now(),
            "running": False,
            "success": not errors,
            "captureErrorBehaviour": behaviour,
            "errors": errors,
        }

    async def job(self, request: Request) -> Response:
        if not self.authorised(request):
            return _unauthorised()
        capture_id = request.path_params["capture_id"]
        with self.state.lock:
            found = self.state.jobs.get(capture_id)
            if found is None:
                return JSONResponse(
                    {"type": "epcisException:NoSuchResourceException", "title": "No such job"},
                    status_code=404,
                )
            self.state.polls += 1
            if found.polls_left > 0:
                found.polls_left -= 1
                running = {k: v for k, v in found.body.items() if k not in ("finishedAt", "errors")}
                return JSONResponse({**running, "running": True, "success": True, "errors": []})
            return JSONResponse(found.body)

    async def jobs(self, request: Request) -> Response:
        if not self.authorised(request):
            return _unauthorised()
        with self.state.lock:
            listed = [j.body for j in reversed(self.state.jobs.values())]
        return JSONResponse({"captureJobs": listed[:100]})


class EpcisEmulator:
    """The emulated repository on loopback in a background thread.

    ``tls`` holds uvicorn's ``ssl_*`` options (certificate and key files); ``port``
    0 takes a free one (a fixed one lets a test start the repository late, after
    the agent already tried it).

    ::

        with EpcisEmulator(token="t") as repo:
            cfg = EpcisCaptureConfig(url=repo.url, document=EpcisConfig(...))
            repo.state.drop_next = 1
    """

    def __init__(
        self,
        *,
        token: str = "",
        running_polls: int = 1,
        tls: Mapping[str, Any] | None = None,
        port: int = 0,
    ) -> None:
        self.state = EmulatorState(token=token, running_polls=running_polls)
        self._thread = ServerThread(
            create_app(self.state), tls=tls, port=port, name="epcis-emulator"
        )

    @property
    def url(self) -> str:
        """The repository's base URL, ``http://127.0.0.1:<port>`` (``https://`` with ``tls``)."""
        return self._thread.url

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.stop()
