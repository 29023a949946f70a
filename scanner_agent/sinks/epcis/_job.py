"""EPCIS 2.0 capture jobs: parse them and turn a finished job into per-event verdicts.

Pure functions, no I/O: :mod:`scanner_agent.sinks.epcis._client` does the
HTTP and calls these.

What the REST binding says (GS1 EPCIS 2.0 ``openapi.yaml``, github.com/gs1/EPCIS,
``REST Bindings/openapi.yaml``, schema ``CaptureJob``, and the 2.0.1 capture
API): ``POST /capture`` answers ``202`` with ``Location`` (absolute or relative)
of a capture job; ``GET`` of it returns ``captureID``, ``createdAt``,
``finishedAt``, ``running``, ``success``, ``captureErrorBehaviour`` and either
``errors`` (RFC 7807 problem objects: ``type``, ``title``, ``status``,
``detail``, ``instance``) or ``errorFile``.  With ``rollback`` a failed job
stored nothing; with ``proceed`` the events without an error were stored.

What the binding leaves open, and what we do about it:

* **Which event an error is about.**  A problem names no event field.  An
  error is attributed to the events whose ``eventID`` is its ``instance``, or
  whose ``ni:///sha-256;…`` id appears in its ``detail``/``title``/``instance``
  (our ids are always of that form, :func:`scanner_agent.sinks.epcis._document.event_id`).
* **How a duplicate is reported.**  GS1's answer on github.com/gs1/EPCIS issue
  #403 ("the same eventID captured twice ... the 409 error shall be used") makes
  a problem with ``status`` 409 a duplicate; so is one whose ``type`` or
  ``title`` says "duplicate" or "already exists".  A duplicate of ours is a
  resend after a lost reply: the repository holds the event, so it is delivered.
* **A job that does not say its error behaviour** is treated as ``rollback``
  (the binding's default): its other events are captured again, never assumed
  stored.  A resend of a stored event only costs a duplicate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scanner_agent.kernel import ProtocolError, TransientSyncError
from scanner_agent.outbox import EventResult

__all__ = [
    "CaptureJob",
    "CaptureProblem",
    "JobOutcome",
    "ServerProblemError",
    "attributed_events",
    "is_duplicate",
    "parse_capture_job",
    "parse_problem",
    "settle_job",
]

_NI_ID = re.compile(r"ni:///sha-256;([0-9a-fA-F]{64})")
_DUPLICATE_WORDS = ("duplicate", "already exist", "already captured")
_REASON_MAX = 300


class ServerProblemError(TransientSyncError):
    """The capture job failed on the repository's side (5xx problem, ImplementationException).

    Nothing about the events themselves is wrong: the batch is sent again later.
    """

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class CaptureProblem:
    """One RFC 7807 problem of a capture job (or of a ``400``/``409`` capture reply)."""

    type: str = ""
    title: str = ""
    status: int | None = None
    detail: str = ""
    instance: str = ""

    @property
    def reason(self) -> str:
        """The text an operator sees on a rejected scan."""
        text = ": ".join(p for p in (self.title, self.detail) if p) or self.type or "rejected"
        return text[:_REASON_MAX]

    @property
    def server_side(self) -> bool:
        """A fault of the repository, not of the events."""
        return (self.status is not None and self.status >= 500) or (
            "ImplementationException" in self.type
        )


@dataclass(frozen=True, slots=True)
class CaptureJob:
    """A capture job as the repository reports it."""

    capture_id: str
    running: bool
    success: bool
    created_at: str | None = None
    finished_at: str | None = None
    error_behaviour: str | None = None
    """``rollback`` or ``proceed`` as the job reports it; ``None`` when it does not."""
    errors: tuple[CaptureProblem, ...] = ()
    error_file: str | None = None


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What a finished job means for the events it was given."""

    results: dict[str, EventResult] = field(default_factory=dict)
    """Verdicts by EPCIS ``eventID``."""
    resend: tuple[tuple[str, ...], ...] = ()
    """Groups of ``eventID`` s the repository did not store: capture each group again."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_problem(data: Any) -> CaptureProblem:
    """An RFC 7807 problem from JSON; anything else becomes a problem with that text as title."""
    if not isinstance(data, Mapping):
        return CaptureProblem(title=str(data)[:_REASON_MAX] if data is not None else "")
    status = data.get("status")
    return CaptureProblem(
        type=_text(data.get("type")),
        title=_text(data.get("title")),
        status=status if isinstance(status, int) and not isinstance(status, bool) else None,
        detail=_text(data.get("detail")),
        instance=_text(data.get("instance")),
    )


def parse_capture_job(data: Any) -> CaptureJob:
    """A capture job from the decoded JSON of ``GET /capture/{captureID}``.

    Raises:
        ProtocolError: not an object, or ``running``/``success`` missing or not booleans.
    """
    if not isinstance(data, Mapping):
        raise ProtocolError("Failed to read capture job: not a JSON object")
    running, success = data.get("running"), data.get("success")
    if not isinstance(running, bool) or not isinstance(success, bool):
        raise ProtocolError(
            "Failed to read capture job: 'running' and 'success' must be true or false"
        )
    errors = data.get("errors")
    if errors is not None and not isinstance(errors, list):
        raise ProtocolError("Failed to read capture job: 'errors' is not a list")
    behaviour = _text(data.get("captureErrorBehaviour")).lower() or None
    return CaptureJob(
        capture_id=_text(data.get("captureID")),
        running=running,
        success=success,
        created_at=_text(data.get("createdAt")) or None,
        finished_at=_text(data.get("finishedAt")) or None,
        error_behaviour=behaviour,
        errors=tuple(parse_problem(e) for e in errors or ()),
        error_file=_text(data.get("errorFile")) or None,
    )


def is_duplicate(problem: CaptureProblem) -> bool:
    """Whether ``problem`` reports an event the repository already holds (see module doc)."""
    if problem.status == 409:
        return True
    words = f"{problem.type} {problem.title}".lower()
    return any(w in words for w in _DUPLICATE_WORDS)


def attributed_events(problem: CaptureProblem, event_ids: Sequence[str]) -> list[str]:
    """The ``eventID`` s of ``event_ids`` that ``problem`` is about, in ``event_ids`` order."""
    wanted = set(event_ids)
    found: set[str] = set()
    if problem.instance in wanted:
        found.add(problem.instance)
    by_hash = {m.group(1).lower(): e for e in wanted if (m := _NI_ID.match(e))}
    for text in (problem.instance, problem.detail, problem.title):
        for m in _NI_ID.finditer(text):
            hit = by_hash.get(m.group(1).lower())
            if hit is not None:
                found.add(hit)
    return [e for e in event_ids if e in found]


def settle_job(job: CaptureJob, event_ids: Sequence[str]) -> JobOutcome:
    """Per-event verdicts of a finished capture job over the events it was given.

    * A named duplicate is ``duplicate`` (delivered); any other named error
      rejects its events with the problem's title and detail.
    * An error naming no event rejects every event still without a verdict
      (the whole document).  An unnamed duplicate settles a lone event; with
      several left, each is captured again on its own so the answer names it.
    * The events no error names were stored when the job says ``proceed``
      (``accepted``), or go into :attr:`JobOutcome.resend` otherwise.

    Raises:
        ValueError: the job is still running (a caller bug).
        ServerProblemError: the job failed on the repository's side.
        ProtocolError: the job failed but names no error and no error file.
    """
    if job.running:
        raise ValueError(f"capture job {job.capture_id!r} is still running")
    server = [p for p in job.errors if p.server_side]
    if server:
        raise ServerProblemError(
            f"EPCIS capture job {job.capture_id} failed on the repository: {server[0].reason}",
            status_code=server[0].status or 500,
        )
    if not job.success and not job.errors:
        if not job.error_file:
            raise ProtocolError(f"EPCIS capture job {job.capture_id} failed without naming errors")
        job = CaptureJob(
            capture_id=job.capture_id,
            running=False,
            success=False,
            error_behaviour=job.error_behaviour,
            errors=(CaptureProblem(title="capture failed", detail=f"errors in {job.error_file}"),),
        )
    results: dict[str, EventResult] = {}
    unnamed: list[CaptureProblem] = []
    for problem in job.errors:
        named = attributed_events(problem, event_ids)
        if not named:
            unnamed.append(problem)
            continue
        duplicate = is_duplicate(problem)
        for eid in named:
            if duplicate and eid not in results:
                results[eid] = EventResult("duplicate", problem.reason)
            elif not duplicate:
                results[eid] = EventResult("rejected", problem.reason)
    pending = [e for e in event_ids if e not in results]
    if not pending:
        return JobOutcome(results)
    if job.success:
        # Errors on a successful job are warnings: every event without a verdict is stored.
        results.update(dict.fromkeys(pending, EventResult("accepted")))
        return JobOutcome(results)
    invalid = [p for p in unnamed if not is_duplicate(p)]
    if invalid:
        reason = invalid[0].reason
        results.update(dict.fromkeys(pending, EventResult("rejected", reason)))
        return JobOutcome(results)
    if unnamed:  # only unnamed duplicates: which events they were is not known
        if len(pending) == 1:
            results[pending[0]] = EventResult("duplicate", unnamed[0].reason)
            return JobOutcome(results)
        return JobOutcome(results, tuple((e,) for e in pending))
    if job.error_behaviour == "proceed":
        results.update(dict.fromkeys(pending, EventResult("accepted")))
        return JobOutcome(results)
    return JobOutcome(results, (tuple(pending),))
