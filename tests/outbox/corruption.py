"""Corruption fuzzing of real outbox files: damage, then open, lease, export and salvage.

Shared by ``tests/outbox/test_corruption_fuzz.py`` (a bounded, seeded run in
the suite) and ``bench/corruption.py`` (the long run, JSON figures).

One *image* is built per run: an outbox with delivered rows and owed rows in
the main file and more owed rows only in the WAL, copied while the writer still
has it open (as a kill would leave it).  Each case copies the image, applies
one random corruption to the database or the WAL (bit flips, a run of random
bytes, truncation, a zeroed page or frame, a damaged WAL header), then does what the daemon and an
operator would: open (never raising: a start that raises is a crash loop under
systemd), lease and settle until nothing is left, export, and salvage any file
moved aside.  It checks what was delivered against what was written:

* a delivered event whose (event id, code) was never written is a *silently
  altered* code: there must be none;
* a scan owed but never delivered must be *reported*: quarantined, named by an
  export or a salvage report, or behind an alarm (file moved aside, WAL damage).
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from scanner_agent.kernel import ScannerAgentError
from scanner_agent.outbox import EventResult, Outbox
from tests.support.outbox import cn20_scans

PAGE = 4096
KINDS = (
    "db-bitflip",
    "db-byterun",
    "db-truncate",
    "db-zero-page",
    "wal-bitflip",
    "wal-byterun",
    "wal-truncate",
    "wal-zero-frame",
    "wal-header",
)


@dataclass(frozen=True)
class Image:
    """A damaged-to-be outbox: its files and what it holds."""

    db: bytes
    wal: bytes
    shm: bytes
    """The wal-index the writer left (a kill leaves it; it is not damaged here)."""
    written: dict[str, str]
    """Every event id written, and its code."""
    owed: frozenset[str]
    """Event ids still owed to the service."""


def build_image(workdir: Path) -> Image:
    """Delivered and owed rows in the main file, more owed rows only in the WAL."""
    path = workdir / "image.db"
    # Fixed event ids, so a seed hits the same bytes in every run (times still vary).
    ids = random.Random(1)
    scans = [
        s._replace(event_id=str(uuid.UUID(int=ids.getrandbits(128)))) for s in cn20_scans(0, 600)
    ]
    first, in_wal = scans[:300], scans[300:]
    box = Outbox.open(path)
    for start in range(0, 300, 30):
        box.enqueue_many(first[start : start + 30])
    for _ in range(2):
        batch = box.lease(30)
        assert batch is not None
        box.settle(batch.batch_id, {e.event_id: EventResult("accepted") for e in batch.events})
    box.checkpoint()
    box.checkpoint()  # idle: TRUNCATE, so what follows is only in the WAL
    for start in range(0, 300, 30):
        box.enqueue_many(in_wal[start : start + 30])
    image = Image(
        db=path.read_bytes(),
        wal=Path(f"{path}-wal").read_bytes(),
        shm=Path(f"{path}-shm").read_bytes(),
        written={s.event_id: s.code for s in (*first, *in_wal)},
        owed=frozenset(s.event_id for s in (*first[60:], *in_wal)),
    )
    box.close()
    return image


def corrupt(data: bytes, kind: str, rng: random.Random) -> tuple[bytes, str]:
    """``data`` with one corruption of ``kind`` (``db-…`` or ``wal-…``), and where."""
    out = bytearray(data)
    if not out:
        return data, "empty file"
    what = kind.split("-", 1)[1]
    if what == "header":  # 32 bytes of a file of megabytes: random damage seldom hits them
        how = rng.choice(("bitflip", "byterun", "zero"))
        if how == "zero":
            out[:32] = bytes(32)
            return bytes(out), "header zeroed"
        head, where = corrupt(data[:32], f"wal-{how}", rng)
        return head + data[32:], f"header: {where}"
    if what == "bitflip":
        at = rng.randrange(len(out))
        bits = rng.choice((1, 1, 2, 3))
        for _ in range(bits):
            out[at] ^= 1 << rng.randrange(8)
        return bytes(out), f"{bits} bit(s) at {at}"
    if what == "byterun":
        n = rng.randint(2, 64)
        at = rng.randrange(len(out))
        out[at : at + n] = rng.randbytes(min(n, len(out) - at))
        return bytes(out), f"{n} random bytes at {at}"
    if what == "truncate":
        at = rng.randrange(len(out))
        return bytes(out[:at]), f"truncated to {at}"
    if kind.startswith("db"):
        page = rng.randrange(max(1, len(out) // PAGE))
        out[page * PAGE : (page + 1) * PAGE] = bytes(PAGE)
        return bytes(out), f"page {page + 1} zeroed"
    frames = max(1, (len(out) - 32) // (24 + PAGE))
    frame = rng.randrange(frames)
    at = 32 + frame * (24 + PAGE)
    out[at : at + 24 + PAGE] = bytes(len(out[at : at + 24 + PAGE]))
    return bytes(out), f"frame {frame} zeroed"


@dataclass
class CaseResult:
    seed: int
    kind: str
    where: str
    crashed: str = ""
    """An exception from open, lease, export or salvage (must never happen)."""
    delivered: int = 0
    altered: list[tuple[str, str]] = field(default_factory=list)
    """Delivered (event id, code) pairs that were never written (must be none)."""
    missing: int = 0
    """Owed scans not delivered."""
    reported: bool = False
    """Something said so: an alarm, a quarantined row, a damaged row or unreadable stretch."""
    quarantined: int = 0
    export_damaged: int = 0
    moved_aside: bool = False

    @property
    def detected(self) -> bool:
        return self.reported

    @property
    def silent_loss(self) -> bool:
        return self.missing > 0 and not self.reported


def drain(box: Outbox, sent: Counter[tuple[str, str]]) -> None:
    for _ in range(1000):
        batch = box.lease(250)
        if batch is None:
            return
        for e in batch.events:
            sent[(e.event_id, e.code)] += 1
        box.settle(batch.batch_id, {e.event_id: EventResult("accepted") for e in batch.events})
    raise AssertionError("leases never ran out")


def run_case(image: Image, workdir: Path, seed: int) -> CaseResult:
    """One corruption of ``image`` in ``workdir`` (emptied first), checked as described."""
    rng = random.Random(seed)
    kind = rng.choice(KINDS)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    path = workdir / "outbox.db"
    db, wal = image.db, image.wal
    if kind.startswith("db"):
        db, where = corrupt(db, kind, rng)
    else:
        wal, where = corrupt(wal, kind, rng)
    path.write_bytes(db)
    Path(f"{path}-wal").write_bytes(wal)
    Path(f"{path}-shm").write_bytes(image.shm)
    result = CaseResult(seed, kind, where)
    sent: Counter[tuple[str, str]] = Counter()
    step = "open"
    try:
        with Outbox.open(path) as box:
            result.reported |= bool(box.alarms)
            step = "lease"
            drain(box, sent)
            step = "export"
            after = 0
            while True:
                rows, bad = box.export_page(after_seq=after, limit=500)
                if not rows and not bad:
                    break
                result.export_damaged += len(bad)
                after = max(x.seq for x in (*rows, *bad))
            step = "salvage"
            for aside in sorted(workdir.glob("outbox.db.corrupt-*")):
                if aside.name.endswith(("-wal", "-shm")):
                    continue
                result.moved_aside = True
                report = box.salvage(aside)
                result.reported |= bool(report.damaged or report.unreadable)
                drain(box, sent)
            result.quarantined = len(box.quarantined(limit=100_000))
            result.reported |= bool(box.alarms) or result.quarantined > 0
    except (ScannerAgentError, sqlite3.Error, OSError, ValueError, AssertionError) as exc:
        result.crashed = f"{step}: {type(exc).__name__}: {exc}"
        return result
    result.delivered = len(sent)
    result.altered = [pair for pair in sent if image.written.get(pair[0]) != pair[1]]
    delivered_ids = {event_id for event_id, _ in sent}
    result.missing = len(image.owed - delivered_ids)
    result.reported |= result.export_damaged > 0
    return result


def summarize(results: list[CaseResult]) -> dict[str, object]:
    """The figures of a run (for the notes and bench JSON)."""
    return {
        "cases": len(results),
        "by_kind": dict(Counter(r.kind for r in results)),
        "detected": sum(r.detected for r in results),
        "moved_aside": sum(r.moved_aside for r in results),
        "quarantined_rows": sum(r.quarantined for r in results),
        "cases_with_quarantine": sum(r.quarantined > 0 for r in results),
        "export_damaged_rows": sum(r.export_damaged for r in results),
        "cases_missing_owed_scans": sum(r.missing > 0 for r in results),
        "silent_losses": sum(r.silent_loss for r in results),
        "silently_altered_codes": sum(len(r.altered) for r in results),
        "crashes": sum(bool(r.crashed) for r in results),
    }
