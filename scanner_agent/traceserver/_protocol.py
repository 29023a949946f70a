"""Trace API v1 wire rules: what a batch must look like and which events the service refuses.

Two kinds of failure are kept apart on purpose:

* a *malformed batch* (not an object, a missing or mistyped field, a repeated
  ``event_id``, too many events) is the client's bug: :class:`ProtocolError`,
  answered ``400`` for the whole batch, nothing stored;
* a *refused event* (unknown scheme or action, a code that does not fit its
  scheme, a bad timestamp, a code the platform does not know) is data the
  service does not want: that one event is answered ``rejected`` with a reason
  and the rest of the batch goes on.

Everything here is pure and thread-safe; see ``docs/trace-api.md``.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, NoReturn

from scanner_agent.config import ACTIONS as AGENT_ACTIONS

SCHEMES: Final[frozenset[str]] = frozenset({"cn20", "gs1", "ma"})
"""Code schemes the service knows: 20-digit drug trace code, GS1 element string, MA code."""

ACTIONS: Final[frozenset[str]] = frozenset(AGENT_ACTIONS)
"""Actions (business operations) the service accepts on an event."""

EVENT_FIELDS: Final[tuple[str, ...]] = (
    "event_id",
    "code",
    "scheme",
    "action",
    "bill",
    "scanned_at",
    "source",
)
"""Fields every event of a batch carries, all strings."""

BATCH_FIELDS: Final[tuple[str, ...]] = ("batch_id", "device_id", "sent_at", "events")
"""Fields every batch carries."""

REASON_NOT_REGISTERED: Final[str] = "code not registered on the platform"
"""Reason given for a code in the server's ``reject_codes`` set."""

_CN20 = re.compile(r"8[0-9]{19}")
# Field ranges are in the pattern, so only a day 29-31 needs a calendar check.
_RFC3339 = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)


class ProtocolError(Exception):
    """A request the service answers with an error status and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


EventRow = tuple[str, str, str, str, str, str, str]
"""One event's fields in :data:`EVENT_FIELDS` order."""

_event_row = operator.itemgetter(*EVENT_FIELDS)


@dataclass(frozen=True, slots=True)
class Batch:
    """A structurally valid batch; each event is a row of strings in :data:`EVENT_FIELDS` order."""

    batch_id: str
    device_id: str
    sent_at: str
    events: list[EventRow]


def parse_batch(payload: object, *, max_events: int) -> Batch:
    """Check the shape of a decoded ``POST /v1/batches`` body.

    Raises :class:`ProtocolError` (400) naming the first problem found.
    Unknown extra keys are ignored (forward compatibility).
    """
    if not isinstance(payload, dict):
        raise ProtocolError(400, "body must be a JSON object")
    for name in BATCH_FIELDS:
        if name not in payload:
            raise ProtocolError(400, f"missing field: {name}")
    for name in ("batch_id", "device_id", "sent_at"):
        value = payload[name]
        if not isinstance(value, str) or not value:
            raise ProtocolError(400, f"{name} must be a non-empty string")
        if not _is_text(value):
            raise ProtocolError(400, f"{name} is not valid Unicode text")
    events = payload["events"]
    if not isinstance(events, list):
        raise ProtocolError(400, "events must be a list")
    if len(events) > max_events:
        raise ProtocolError(400, f"too many events: {len(events)} > {max_events}")
    # Fast path, C loops only: itemgetter fails on a non-object or a missing
    # field, join on a non-string, encode on a lone surrogate.
    try:
        rows: list[EventRow] = [_event_row(event) for event in events]
        text = "".join(["".join(row) for row in rows])
        if not text.isascii():
            text.encode("utf-8")
        ids = {row[0] for row in rows}
        ok = len(ids) == len(rows) and "" not in ids
    except (TypeError, KeyError, UnicodeEncodeError):
        ok = False
    if not ok:
        _raise_event_error(events)
    return Batch(
        batch_id=payload["batch_id"],
        device_id=payload["device_id"],
        sent_at=payload["sent_at"],
        events=rows,
    )


def _raise_event_error(events: list[Any]) -> NoReturn:
    """Slow path of :func:`parse_batch`: find and report the first bad event."""
    seen: set[str] = set()
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise ProtocolError(400, f"events[{index}] must be an object")
        for name in EVENT_FIELDS:
            if name not in event:
                raise ProtocolError(400, f"events[{index}]: missing field: {name}")
            value = event[name]
            if not isinstance(value, str):
                raise ProtocolError(400, f"events[{index}]: field must be a string: {name}")
            if not _is_text(value):
                raise ProtocolError(400, f"events[{index}]: {name} is not valid Unicode text")
        event_id = event["event_id"]
        if not event_id:
            raise ProtocolError(400, f"events[{index}]: event_id must not be empty")
        if event_id in seen:
            raise ProtocolError(400, f"events[{index}]: duplicate event_id in batch: {event_id}")
        seen.add(event_id)
    raise ProtocolError(400, "malformed events")  # pragma: no cover - the fast path disagreed


def _is_text(value: str) -> bool:
    """False for a string with a lone surrogate (JSON ``"\\ud800"``): SQLite cannot store it."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def fingerprint(batch: Batch) -> str:
    """SHA-256 (hex) identifying a batch's content, for replay detection.

    It covers the batch id, the device id and every event's seven fields in
    order, as canonical JSON; key order, whitespace, escaping, unknown extra
    keys and ``Content-Encoding`` do not change it, and ``sent_at`` is left out
    so a retry may carry a fresh send time.
    """
    canonical = json.dumps([batch.batch_id, batch.device_id, batch.events], separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def is_rfc3339(value: str) -> bool:
    """True for an RFC 3339 date-time *with* an offset (``Z`` or ``±hh:mm``)."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        return False
    if match[1] < "29":
        return True
    try:  # 2023-02-29, 2024-04-31 ...
        date.fromisoformat(value[:10])
    except ValueError:
        return False
    return True


def code_problem(scheme: str, code: str) -> str | None:
    """Why ``code`` does not fit ``scheme``, or None when it does (scheme must be known)."""
    if scheme == "cn20":
        if _CN20.fullmatch(code) is None:
            return "malformed cn20 code: expected 20 digits starting with 8"
    elif scheme == "gs1":
        if not code.startswith("(01)") or "(21)" not in code:
            return "malformed gs1 code: expected (01) GTIN and (21) serial"
    elif not code.startswith("MA."):
        return "malformed ma code: expected prefix MA."
    return None


def event_problem(event: EventRow, reject_codes: frozenset[str]) -> str | None:
    """The reason the service refuses one (structurally valid) event, or None to keep it."""
    return event_problems([event], reject_codes)[0]


def event_problems(events: Iterable[EventRow], reject_codes: frozenset[str]) -> list[str | None]:
    """:func:`event_problem` for each event, in order (one tight loop: this is per-event work)."""
    problems: list[str | None] = []
    append = problems.append
    cn20 = _CN20.fullmatch
    for _event_id, code, scheme, action, _bill, scanned_at, _source in events:
        if scheme == "cn20":
            if cn20(code) is None:
                append("malformed cn20 code: expected 20 digits starting with 8")
                continue
        elif scheme not in SCHEMES:
            append(f"unknown scheme: {scheme}")
            continue
        else:
            problem = code_problem(scheme, code)
            if problem is not None:
                append(problem)
                continue
        if action not in ACTIONS:
            append(f"unknown action: {action}")
        elif not is_rfc3339(scanned_at):
            append("scanned_at must be RFC 3339 with offset")
        elif code in reject_codes:
            append(REASON_NOT_REGISTERED)
        else:
            append(None)
    return problems
