"""Trace API v1 wire rules: what a batch must look like and which events the service refuses.

Two kinds of failure are kept apart on purpose:

* a *malformed batch* (not an object, a missing or mistyped field, a repeated
  ``event_id``, too many events) is the client's bug: :class:`RequestRefused`,
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
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final, NoReturn

from scanner_agent.codes import gs1_code_problem
from scanner_agent.kernel import ACTIONS as AGENT_ACTIONS
from scanner_agent.kernel import ScannerAgentError

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
# Whole-batch checks (:func:`_all_kept`): one C call for every code or time of a
# batch, joined by newlines.  The time pattern accepts a subset of what
# :func:`is_rfc3339` does (every real date but 29 February), so it needs no
# calendar (nor year 0000, which ``date`` refuses); a batch it does not accept
# is checked event by event.
_CN20_RUN = re.compile(r"8[0-9]{19}(?:\n8[0-9]{19})*+")
_SAFE_TIME = (
    r"(?!0000)[0-9]{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
    r"[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_SAFE_TIME_RUN = re.compile(f"{_SAFE_TIME}(?:\n{_SAFE_TIME})*+")


class RequestRefused(ScannerAgentError):
    """A request the service answers with an error status and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


EventRow = tuple[str, str, str, str, str, str, str]
"""One event's fields in :data:`EVENT_FIELDS` order."""

_event_row = operator.itemgetter(*EVENT_FIELDS)
_event_id = operator.itemgetter(0)
_code = operator.itemgetter(1)
_scheme = operator.itemgetter(2)
_action = operator.itemgetter(3)
_scanned_at = operator.itemgetter(5)


@dataclass(frozen=True, slots=True)
class Batch:
    """A structurally valid batch; each event is a row of strings in :data:`EVENT_FIELDS` order."""

    batch_id: str
    device_id: str
    sent_at: str
    events: list[EventRow]
    plain_json: str | None = field(default=None, compare=False, repr=False)
    """For a *plain* batch, one where no string holds ``"``, ``\\`` or a control
    character U+0000-U+001F (each string is then its own JSON text between
    quotes): the events as compact JSON arrays of their seven strings, which is
    what ``json.dumps(events, ensure_ascii=False, separators=(",", ":"))`` writes.
    Joined from the strings by :func:`decode_batch`'s fast path, it lets the
    fingerprint and the reply be assembled instead of encoded; None otherwise."""


# The plain form's strings are matched as "anything but a quote", which sre
# scans in a tight loop (a character class costs it several times more per
# character); backslashes and control characters are ruled out separately.
_PLAIN_HEAD = re.compile(
    r'\{"batch_id":"([^"]++)","device_id":"([^"]++)","sent_at":"([^"]++)","events":(?=\[)'
)
"""The start of a compact batch object, up to (not including) the events' ``[``."""
_PLAIN_EVENT = re.compile(
    # Later events follow a ``,``; the ``[`` opening the array only counts
    # right after ``"events":``.  Both alternatives start with a literal, so
    # sre skips to the next ``,`` or ``[`` instead of trying every position.
    r"(?:,|\[(?<=:\[))\{"
    + ",".join(f'"{name}":"([^"]{"+" if name == "event_id" else "*"}+)"' for name in EVENT_FIELDS)
    + r"\}"
)
"""One compact event object, its fields in :data:`EVENT_FIELDS` order, with the separator before it."""
_PLAIN_EVENT_CHARS: Final = len(",{" + ",".join(f'"{name}":""' for name in EVENT_FIELDS) + "}")
"""Characters of one :data:`_PLAIN_EVENT` match besides its seven field values."""
_ROW_JSON_CHARS: Final = len('["","","","","","",""],')
"""Characters of one event in :attr:`Batch.plain_json` besides its values (with its comma)."""
_NOT_PLAIN: Final = ("\\", *map(chr, range(0x20)))
"""What a plain string must not hold: an escape, or a control character (JSON forbids them raw)."""


def decode_batch(body: bytes, *, max_events: int) -> Batch:
    """Decode and check a ``POST /v1/batches`` body (uncompressed bytes) as :func:`parse_batch` does.

    Raises :class:`RequestRefused` (400) for a body that is not JSON and for
    everything :func:`parse_batch` refuses.  The body the agent sends (compact
    JSON, fields in the documented order, no escapes) is read by one regex
    ``findall`` into the event rows directly: :func:`json.loads` would build a
    dict and eight strings per event only to have them taken apart again.  Any
    other body takes the general path; both give the same :class:`Batch`.
    """
    batch = _decode_plain(body, max_events)
    if batch is not None:
        return batch
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, huge int
        raise RequestRefused(400, "body is not valid JSON") from None
    return parse_batch(payload, max_events=max_events)


def _decode_plain(body: bytes, max_events: int) -> Batch | None:
    """The fast path of :func:`decode_batch`, or None when ``body`` is not exactly in the plain form.

    The plain form is ``{"batch_id":…,"device_id":…,"sent_at":…,"events":[…]}``
    with compact events whose seven fields come in :data:`EVENT_FIELDS` order,
    no other key, no whitespace, strict UTF-8, at least one event and no
    string that holds a backslash or a control character.  Such a body is
    valid JSON and its strings are the literal text between the quotes, so
    the regex captures are exactly what :func:`json.loads` would give.

    ``findall`` skips text it cannot match, so the matches are checked to
    cover the whole array: none can cover the closing ``]}`` (a match ends in
    ``"}``), and if their lengths add up to everything from the ``[`` to
    there, they tile it with no gap.  Their values' total length comes from
    :attr:`Batch.plain_json`, which is built here anyway.  A repeated or empty
    ``event_id``, too many events or an empty array go to the general path,
    which reports them.
    """
    if not body.endswith(b"]}"):
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    head = _PLAIN_HEAD.match(text)
    if head is None:
        return None
    for char in _NOT_PLAIN:  # one memchr each: cheaper than a regex over every character
        if char in text:
            return None
    start = head.end()
    if _PLAIN_EVENT.match(text, start) is None:
        return None  # not even the first event: spare the scan of the whole array
    rows: list[EventRow] = _PLAIN_EVENT.findall(text, start)
    count = len(rows)
    if not 0 < count <= max_events:
        return None
    plain_json = '[["' + '"],["'.join(map('","'.join, rows)) + '"]]'
    values = len(plain_json) - 1 - count * _ROW_JSON_CHARS  # the outer [], no last comma
    if len(text) - 2 - start != count * _PLAIN_EVENT_CHARS + values:
        return None  # something between the matches that is not an event
    if len(set(map(_event_id, rows))) != count:
        return None
    return Batch(
        batch_id=head[1],
        device_id=head[2],
        sent_at=head[3],
        events=rows,
        plain_json=plain_json,
    )


def parse_batch(payload: object, *, max_events: int) -> Batch:
    """Check the shape of a decoded ``POST /v1/batches`` body.

    Raises :class:`RequestRefused` (400) naming the first problem found.
    Unknown extra keys are ignored (forward compatibility).
    """
    if not isinstance(payload, dict):
        raise RequestRefused(400, "body must be a JSON object")
    for name in BATCH_FIELDS:
        if name not in payload:
            raise RequestRefused(400, f"missing field: {name}")
    for name in ("batch_id", "device_id", "sent_at"):
        value = payload[name]
        if not isinstance(value, str) or not value:
            raise RequestRefused(400, f"{name} must be a non-empty string")
        if not _is_text(value):
            raise RequestRefused(400, f"{name} is not valid Unicode text")
    events = payload["events"]
    if not isinstance(events, list):
        raise RequestRefused(400, "events must be a list")
    if len(events) > max_events:
        raise RequestRefused(400, f"too many events: {len(events)} > {max_events}")
    # Fast path, C loops only: itemgetter fails on a non-object or a missing
    # field, join on a non-string, encode on a lone surrogate; a NUL anywhere sends the
    # batch to the slow path too.
    try:
        rows: list[EventRow] = [_event_row(event) for event in events]
        text = "".join(["".join(row) for row in rows])
        if not text.isascii():
            text.encode("utf-8")
        ids = {row[0] for row in rows}
        ok = len(ids) == len(rows) and "" not in ids and "\x00" not in text
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
            raise RequestRefused(400, f"events[{index}] must be an object")
        for name in EVENT_FIELDS:
            if name not in event:
                raise RequestRefused(400, f"events[{index}]: missing field: {name}")
            value = event[name]
            if not isinstance(value, str):
                raise RequestRefused(400, f"events[{index}]: field must be a string: {name}")
            if not _is_text(value):
                raise RequestRefused(400, f"events[{index}]: {name} is not valid Unicode text")
        event_id = event["event_id"]
        if not event_id:
            raise RequestRefused(400, f"events[{index}]: event_id must not be empty")
        if event_id in seen:
            raise RequestRefused(400, f"events[{index}]: duplicate event_id in batch: {event_id}")
        seen.add(event_id)
    raise RequestRefused(400, "malformed events")  # pragma: no cover - the fast path disagreed


def _is_text(value: str) -> bool:
    """False for a string with a lone surrogate (JSON ``"\\ud800"``), which SQLite cannot
    store, or a NUL (``"\\u0000"``), which PostgreSQL text cannot: every backend refuses both."""
    if "\x00" in value:
        return False
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
    if batch.plain_json is not None:
        # Printable ASCII without ``"`` or ``\\`` is written as itself with
        # ensure_ascii, so the plain form is the canonical one when it is
        # ASCII (an O(1) flag of str) and holds no DEL (escaped as \u007f).
        canonical = f'["{batch.batch_id}","{batch.device_id}",{batch.plain_json}]'
        if canonical.isascii() and "\x7f" not in canonical:
            return hashlib.sha256(canonical.encode("ascii")).hexdigest()
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
    """Why ``code`` does not fit ``scheme``, or None when it does (scheme must be known).

    A ``gs1`` code is judged by the agent's own rule for a stored code
    (:func:`scanner_agent.codes.gs1_code_problem`): valid GS1 data with a GTIN
    and a serial, in the canonical bracketed form. So whatever the agent
    accepts as gs1 the service takes, and what the service refuses the agent
    refuses at intake, with the same reason.
    """
    if scheme == "cn20":
        if _CN20.fullmatch(code) is None:
            return "malformed cn20 code: expected 20 digits starting with 8"
    elif scheme == "gs1":
        return gs1_code_problem(code)
    elif not code.startswith("MA."):
        return "malformed ma code: expected prefix MA."
    return None


def event_problem(event: EventRow, reject_codes: frozenset[str]) -> str | None:
    """The reason the service refuses one (structurally valid) event, or None to keep it."""
    return event_problems([event], reject_codes)[0]


def refusals(events: list[EventRow], reject_codes: frozenset[str]) -> dict[int, str]:
    """The events the service refuses, by index, with the reason :func:`event_problem` gives.

    Usually every event is kept: :func:`_all_kept` proves that for a whole
    batch with a few C calls, and only a batch it cannot clear is checked
    event by event.
    """
    if _all_kept(events, reject_codes):
        return {}
    problems = event_problems(events, reject_codes)
    return {index: problem for index, problem in enumerate(problems) if problem is not None}


def _all_kept(events: list[EventRow], reject_codes: frozenset[str]) -> bool:
    """True only if :func:`event_problem` is None for every event (False: look closer).

    For a batch of ``cn20`` codes: every action known, every code and every
    time matched at once by a pattern run over them joined with newlines, and
    no code in ``reject_codes``.  A joined run matching the pattern with
    exactly ``len(events) - 1`` newlines means no value held a newline of its
    own, so the pieces are the values and each one matched.
    """
    if not events:
        return True
    last = len(events) - 1
    if list(map(_scheme, events)).count("cn20") != len(events):
        return False
    if not ACTIONS.issuperset(map(_action, events)):
        return False
    codes = list(map(_code, events))
    joined = "\n".join(codes)
    if _CN20_RUN.fullmatch(joined) is None or joined.count("\n") != last:
        return False
    joined = "\n".join(map(_scanned_at, events))
    if _SAFE_TIME_RUN.fullmatch(joined) is None or joined.count("\n") != last:
        return False
    return not reject_codes or reject_codes.isdisjoint(codes)


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
