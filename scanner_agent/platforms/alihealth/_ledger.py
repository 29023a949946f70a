"""The 码上放心 sink's records in the outbox file: upload plans and results, in ``bill_log``.

Everything here runs on the outbox thread (it uses ``Outbox.atomic()``), and
writes only ``bill_log`` rows, so ``scanner-agent bill show`` lists a bill's
uploads and platform states next to its open and close.

**The upload plan.**  A bill over ``max_codes`` codes goes in numbered
sub-bills (:func:`split_bill`).  The split is recorded the first time the bill
is sent, as the sub-bill numbers with the first and last code of each (codes
are split in sorted order, so ranges identify them) and the highest scan
sequence number then on the bill.  Every later attempt, including a requeue of
some dead letters weeks later after delivered rows were pruned, places each
code in the sub-bill the plan says, so a sub-bill number never goes out twice
with different codes.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from scanner_agent.outbox import Outbox
from scanner_agent.platforms.alihealth._protocol import (
    BillUpload,
    is_trace_code,
    split_bill,
)

__all__ = ["PLAN_EVENT", "Part", "UploadPlan", "append_log", "upload_plan"]

PLAN_EVENT = "upload-plan"
"""``bill_log.event`` of a recorded plan."""


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def upload_plan(outbox: Outbox, bill: str, max_codes: int) -> UploadPlan | None:
    """The bill's recorded plan; made from its trace codes and recorded when there is none.

    None when the bill has no trace code at all (nothing to upload).
    """
    with outbox.atomic() as db:
        row = db.execute(
            "SELECT detail FROM bill_log WHERE bill = ? AND event = ? ORDER BY id LIMIT 1",
            (bill, PLAN_EVENT),
        ).fetchone()
        if row is not None:
            return UploadPlan.from_json(bill, str(row[0]))
        rows = db.execute(
            "SELECT seq, code FROM scans WHERE bill = ? AND removed = 0", (bill,)
        ).fetchall()
        codes = tuple(str(c) for _s, c in rows if is_trace_code(str(c)))
        if not codes:
            return None
        whole = BillUpload(bill, datetime.now(UTC), 0, "", "", codes)
        parts = tuple(
            Part(p.bill_code, p.codes[0], p.codes[-1], len(p.codes))
            for p in split_bill(whole, max_codes)
        )
        plan = UploadPlan(bill, max(int(s) for s, _c in rows), parts)
        db.execute(
            "INSERT INTO bill_log (bill, at, event, detail) VALUES (?, ?, ?, ?)",
            (bill, _now(), PLAN_EVENT, plan.to_json()),
        )
        return plan


def append_log(outbox: Outbox, entries: Iterable[tuple[str, str, str]]) -> None:
    """Add ``(bill, event, detail)`` rows to ``bill_log`` in one transaction."""
    now = _now()
    with outbox.atomic() as db:
        db.executemany(
            "INSERT INTO bill_log (bill, at, event, detail) VALUES (?, ?, ?, ?)",
            [(bill, now, event, detail) for bill, event, detail in entries],
        )
