"""The 码上放心 sink's records in the outbox file: upload plans and results, in ``bill_log``.

Everything here runs on the outbox thread, each call one transaction over the
bill log (``Outbox.bills()``; the SQL is the outbox's); :func:`platform_failures`
also works on an outbox opened read-only (``scanner-agent bill failed``).  It
writes only ``bill_log`` rows, so ``scanner-agent bill history`` lists a bill's
uploads and platform states next to its open and close.

**The upload plan.**  A bill over ``max_codes`` codes goes in numbered
sub-bills (:func:`split_bill`).  The split is recorded the first time the bill
is sent, as the sub-bill numbers with the first and last code of each (codes
are split in sorted order, so ranges identify them) and the highest scan
sequence number then on the bill.  Every later attempt, including a requeue of
some dead letters weeks later after delivered rows were pruned, places each
code in the sub-bill the plan says, so a sub-bill number never goes out twice
with different codes.

**Processing failures.**  The platform processes a bill after taking it; the
sink records its ``deal_status`` (event ``platform-status``).  A (sub-)bill
whose latest state is 4 (processing failed) is a :class:`PlatformFailure`
until an operator acknowledges the bill (event ``platform-ack``, with a note):
until then the daemon shows an alarm, and ``scanner-agent bill failed`` lists
it.  The rows stay delivered in the outbox: the platform holds the bill, what
failed is its processing, which is fixed on the platform's side or with a new
bill.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from scanner_agent.outbox import Outbox
from scanner_agent.sinks.alihealth._protocol import (
    BillUpload,
    is_trace_code,
    split_bill,
)

__all__ = [
    "ACK_EVENT",
    "PLAN_EVENT",
    "STATUS_EVENT",
    "Part",
    "PlatformFailure",
    "UploadPlan",
    "acknowledge_failures",
    "append_log",
    "platform_failures",
    "status_detail",
    "upload_plan",
]

PLAN_EVENT = "upload-plan"
"""``bill_log.event`` of a recorded plan."""
STATUS_EVENT = "platform-status"
"""``bill_log.event`` of the platform's processing state of a (sub-)bill."""
ACK_EVENT = "platform-ack"
"""``bill_log.event`` of an operator acknowledging the bill's processing failures."""
_STATUS = re.compile(r"^(\S+): deal_status (\S+)")
_FAILED = "4"


@dataclass(frozen=True, slots=True)
class Part:
    """One upload call of a bill: its number and the range of (sorted) codes in it."""

    number: str
    first: str
    last: str
    count: int


@dataclass(frozen=True, slots=True)
class UploadPlan:
    """How a bill is split into calls, fixed when it was first sent."""

    bill: str
    max_seq: int
    """Scans of the bill with a higher sequence number came after the plan: not part of it."""
    parts: tuple[Part, ...]

    def part_of(self, code: str) -> Part | None:
        """The sub-bill ``code`` belongs to, or None when no range holds it."""
        i = bisect.bisect_right([p.first for p in self.parts], code) - 1
        if i >= 0 and code <= self.parts[i].last:
            return self.parts[i]
        return None

    def to_json(self) -> str:
        """The ``bill_log.detail`` form."""
        return json.dumps(
            {
                "max_seq": self.max_seq,
                "parts": [[p.number, p.first, p.last, p.count] for p in self.parts],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, bill: str, text: str) -> UploadPlan:
        """Read a recorded plan (raises ValueError on a malformed one)."""
        data = json.loads(text)
        parts = tuple(Part(str(n), str(a), str(b), int(c)) for n, a, b, c in data["parts"])
        return cls(bill, int(data["max_seq"]), parts)


def upload_plan(outbox: Outbox, bill: str, max_codes: int) -> UploadPlan | None:
    """The bill's recorded plan; made from its trace codes and recorded when there is none.

    None when the bill has no trace code at all (nothing to upload).
    """
    with outbox.bills() as store:
        recorded = store.log_detail(bill, PLAN_EVENT)
        if recorded is not None:
            return UploadPlan.from_json(bill, recorded)
        rows = store.codes(bill)
        codes = tuple(c for _s, c in rows if is_trace_code(c))
        if not codes:
            return None
        whole = BillUpload(bill, outbox.clock(), 0, "", "", codes)
        parts = tuple(
            Part(p.bill_code, p.codes[0], p.codes[-1], len(p.codes))
            for p in split_bill(whole, max_codes)
        )
        plan = UploadPlan(bill, max(s for s, _c in rows), parts)
        store.log([(bill, PLAN_EVENT, plan.to_json())])
        return plan


def append_log(outbox: Outbox, entries: Iterable[tuple[str, str, str]]) -> None:
    """Add ``(bill, event, detail)`` rows to ``bill_log`` in one transaction."""
    with outbox.bills() as store:
        store.log(entries)


def status_detail(number: str, deal_status: str, message: str) -> str:
    """The ``bill_log.detail`` of a ``platform-status`` entry (what :func:`platform_failures` reads)."""
    text = {"3": "processed", _FAILED: "processing failed"}.get(deal_status, "state")
    return f"{number}: deal_status {deal_status} ({text}) {message}".strip()


@dataclass(frozen=True, slots=True)
class PlatformFailure:
    """A (sub-)bill the platform took but failed to process, not yet acknowledged."""

    bill: str
    """The bill as scanned (``bill_log.bill``)."""
    number: str
    """The (sub-)bill number the platform knows (``SO-1`` or ``SO-1-2``)."""
    at: str
    """When the failure was recorded (UTC, ISO 8601)."""
    detail: str
    """The recorded state with the platform's message."""


def platform_failures(outbox: Outbox, bill: str | None = None) -> list[PlatformFailure]:
    """(Sub-)bills whose latest recorded state is processing failed and not acknowledged.

    Oldest first; only ``bill``'s when given.  Works on an outbox opened
    read-only too (``scanner-agent bill failed`` beside a running daemon).
    """
    with outbox.bills() as store:
        entries = store.log_entries(bill=bill, events=(STATUS_EVENT, ACK_EVENT))
    latest: dict[tuple[str, str], PlatformFailure | None] = {}
    for name, at, event, detail in entries:
        if event == ACK_EVENT:
            for key in [k for k in latest if k[0] == name]:
                latest[key] = None
            continue
        match = _STATUS.match(detail)
        if match is None:
            continue
        failed = match[2] == _FAILED
        latest[(name, match[1])] = PlatformFailure(name, match[1], at, detail) if failed else None
    return [f for f in latest.values() if f is not None]


def acknowledge_failures(outbox: Outbox, bill: str, note: str) -> list[PlatformFailure]:
    """Record that an operator handled ``bill``'s processing failures; the ones cleared.

    Nothing is written when the bill has none.
    """
    failures = platform_failures(outbox, bill)
    if failures:
        numbers = ", ".join(f.number for f in failures)
        append_log(outbox, [(bill, ACK_EVENT, f"{numbers}: {note}".strip().rstrip(":"))])
    return failures
