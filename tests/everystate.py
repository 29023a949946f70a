"""One outbox file holding a scan in every row state and a bill in every bill state.

Built only through the library's own calls (enqueue, lease, settle, bill
open/close/undo/remove), the way the daemon puts rows in each state, so a
test can point every reader at it (``queue stats/ls``, ``doctor``,
``status``, metrics, the TUI, the bill commands) and compare their counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scanner_agent.bills import BillBook
from scanner_agent.outbox import EventResult, NewScan, Outbox, uuid7
from tests.outbox.damage import damage_code

DEVICE = "test-dock"
"""The device id of the scans and bills (``make_config``'s)."""
DEFAULT_BILL = f"{DEVICE}-ship"


@dataclass(frozen=True)
class EveryState:
    """What the file holds, as every reader must report it."""

    path: Path
    counts: dict[str, int]
    """Rows per row state; every row in exactly one."""
    bills: dict[str, str]
    """Bill number -> bill state."""
    bill_counts: dict[str, dict[str, int]]
    """Bill number -> rows per row state (zeros left out)."""

    @property
    def backlog(self) -> int:
        return self.counts["pending"] + self.counts["held"] + self.counts["in_flight"]


def _scan(n: int, bill: str) -> NewScan:
    code = f"8{n:019d}"
    return NewScan(
        uuid7(),
        code,
        "cn20",
        code,
        None,
        "ship",
        bill,
        DEVICE,
        "tcp:test",
        "2026-11-23T10:00:00.000+00:00",
        product=code[:7],
    )


def build(path: Path) -> EveryState:
    """Write the file at ``path`` (closed again when this returns)."""
    # Quarantined: a closed bill's scan whose code changed on disk (one byte), found by the
    # lease's checksum check.
    damaged = _scan(16, "SO-DAMAGED")
    with Outbox.open(path) as box:
        book = BillBook(box)
        book.open("SO-DAMAGED", 201, device_id=DEVICE, action="ship")
        box.enqueue_many([damaged])
        book.close("SO-DAMAGED")
    damage_code(path, damaged, value=ord("9"))
    with Outbox.open(path) as box:
        book = BillBook(box)
        assert box.lease(100) is None
        # Settled: a default bill's scans and two closed bills' scans in one batch.
        book.open("SO-PART", 201, device_id=DEVICE, action="ship")
        box.enqueue_many([_scan(4, "SO-PART"), _scan(5, "SO-PART")])
        book.close("SO-PART")
        book.open("SO-DONE", 201, device_id=DEVICE, action="ship")
        box.enqueue_many([_scan(6, "SO-DONE")])
        book.close("SO-DONE")
        box.enqueue_many([_scan(1, DEFAULT_BILL), _scan(2, DEFAULT_BILL), _scan(3, DEFAULT_BILL)])
        batch = box.lease(100)
        assert batch is not None
        assert len(batch.events) == 6
        verdicts = {
            1: EventResult("accepted"),
            2: EventResult("duplicate"),
            3: EventResult("rejected", "code not registered"),
            4: EventResult("accepted"),
            5: EventResult("rejected", "code not registered"),
            6: EventResult("accepted"),
        }
        box.settle(batch.batch_id, {e.event_id: verdicts[int(e.code[1:])] for e in batch.events})
        # In flight: leased, no answer yet.
        box.enqueue_many([_scan(7, DEFAULT_BILL), _scan(8, DEFAULT_BILL)])
        assert box.lease(100) is not None
        # Pending: a default bill's scan, and a closed bill's scan, not leased yet.
        box.enqueue_many([_scan(9, DEFAULT_BILL), _scan(10, DEFAULT_BILL)])
        book.remove(DEFAULT_BILL, reason="damaged carton", seq=_seq(box, 10))
        book.open("SO-OWED", 201, device_id=DEVICE, action="ship")
        box.enqueue_many([_scan(11, "SO-OWED")])
        book.close("SO-OWED")
        # An empty closed bill: its only scan was taken off again.
        book.open("SO-EMPTY", 201, device_id=DEVICE, action="ship")
        box.enqueue_many([_scan(12, "SO-EMPTY")])
        book.undo("SO-EMPTY", reason="wrong bill")
        book.close("SO-EMPTY")
        # Held: an open bill's scan; two more taken off it (undo, remove by code).
        book.open("SO-OPEN", 201, device_id=DEVICE, action="ship")
        box.enqueue_many([_scan(13, "SO-OPEN"), _scan(14, "SO-OPEN"), _scan(15, "SO-OPEN")])
        book.undo("SO-OPEN", reason="scanned twice")
        book.remove("SO-OPEN", reason="wrong product", code=f"8{14:019d}")
    return EveryState(
        path=path,
        counts={
            "pending": 2,  # 9, 11
            "held": 1,  # 13
            "in_flight": 2,  # 7, 8
            "delivered": 4,  # 1, 2, 4, 6
            "rejected": 2,  # 3, 5
            "removed": 4,  # 10, 12, 14, 15
            "quarantined": 1,  # 16
        },
        bills={
            "SO-PART": "partly_rejected",
            "SO-DONE": "delivered",
            "SO-OWED": "closed",
            "SO-EMPTY": "empty",
            "SO-OPEN": "open",
            "SO-DAMAGED": "partly_rejected",
            DEFAULT_BILL: "default",
        },
        bill_counts={
            "SO-PART": {"delivered": 1, "rejected": 1},
            "SO-DONE": {"delivered": 1},
            "SO-OWED": {"pending": 1},
            "SO-EMPTY": {"removed": 1},
            "SO-OPEN": {"held": 1, "removed": 2},
            "SO-DAMAGED": {"quarantined": 1},
            DEFAULT_BILL: {
                "delivered": 2,
                "rejected": 1,
                "in_flight": 2,
                "pending": 1,
                "removed": 1,
            },
        },
    )


def _seq(box: Outbox, n: int) -> int:
    (row,) = box.rows(code=f"8{n:019d}")
    return row.seq
