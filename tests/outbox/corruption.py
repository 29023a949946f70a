"""Corruption fuzzing of real outbox files: damage, then open, lease, export and salvage.

Shared by ``tests/outbox/test_corruption_fuzz.py`` (a bounded, seeded run in
the suite) and ``bench/corruption.py`` (the long run, JSON figures).

One *image* is built per run: an outbox with delivered rows and owed rows in
the main file and more owed rows only in the WAL, copied while the writer still
has it open (as a kill would leave it).  Each case copies the image, applies
one random corruption to the database or the WAL (bit flips, a run of random
bytes, truncation, a zeroed page or frame, a damaged WAL header), then does what the daemon and an
operator would (with a clock an hour on, so every lease the writer took has expired): open (never raising: a start that raises is a crash loop under
systemd), lease and settle until nothing is left, export, and salvage any file
moved aside.  It checks what was delivered against what was written:

* a delivered event whose (event id, code) was never written is a *silently
  altered* code: there must be none;
* every *undamaged* owed scan must be delivered (see below);
* a scan owed but never delivered must be *reported*: quarantined, named by an
  export or a salvage report, or behind an alarm (file moved aside, WAL damage).
  This is checked per case, not per row: an alarm names a file or a WAL, and an
  unreadable stretch a range of seqs, not each scan.

An owed scan is *undamaged* when the bytes holding its current version are as
written.  Its current version is its cell on the latest version of a table-leaf
page of the image (the WAL's last frame of that page, else the main file's
page), with the overflow pages its payload continues on (each, too, in its
latest version): its *places*, found in the undamaged image by
:func:`scanner_agent.outbox._pages.leaf_cells`.  The damaged bytes are those
that differ from the image (a truncated file: every byte past the cut).  Then:

* damage to the database: none of its damaged bytes is in a place of the scan
  that lies in the main file (page granularity: damage to another part of the
  same page counts, although it may leave the cell readable);
* damage to the WAL: no place of the scan that lies in the WAL is a damaged
  frame (its 24-byte header included), and some commit frame at or after the
  last of them is undamaged, with the stored checksum before it (the previous
  frame's, or the WAL header's for frame 0) undamaged too: then the commit
  holds on its own, and the agent's WAL repair keeps every frame up to it
  (:mod:`scanner_agent.outbox._wal`).  Damage to the rest of the WAL header
  does not count: the agent takes the header's fields from the ``-shm`` the
  killed writer left, which these cases never damage.

A scan whose places are all intact may still be delivered late (by salvage, not
the first lease) but must be delivered.  A scan whose place is damaged may still
be delivered, from another intact copy of it (its row checksum decides), or not.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from scanner_agent.kernel import ScannerAgentError, utc_now
from scanner_agent.outbox import EventResult, Outbox
from scanner_agent.outbox._pages import leaf_cells
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
    places: dict[str, tuple[tuple[str, int], ...]]
    """Each owed event id's places: ``("db", page number)`` or ``("wal", frame index)``."""
    commits: tuple[int, ...]
    """The indexes of the WAL's commit frames."""


FRAME = 24 + PAGE


def _frames(wal: bytes) -> list[tuple[int, bytes]]:
    """The (page number, page) of every frame of ``wal`` (intact: the image's)."""
    return [
        (int.from_bytes(wal[at : at + 4], "big"), wal[at + 24 : at + FRAME])
        for at in range(32, len(wal) - FRAME + 1, FRAME)
    ]


def _places(db: bytes, wal: bytes, width: int) -> dict[str, tuple[tuple[str, int], ...]]:
    """Where each row's current version lies (see the module): event id to places."""
    frames = _frames(wal)
    latest = {n: i for i, (n, _) in enumerate(frames)}

    def place(page: int) -> tuple[str, int]:
        return ("wal", latest[page]) if page in latest else ("db", page)

    out: dict[str, tuple[tuple[str, int], ...]] = {}
    for cell in leaf_cells(db, width, frames):
        if cell.rank != latest.get(cell.page, -1):
            continue  # a stale version of the page
        event_id = str(cell.values[1])
        assert event_id not in out, f"{event_id} twice in the image's current pages"
        out[event_id] = tuple(place(p) for p in (cell.page, *cell.overflow))
    return out


def in_flight(box: Outbox, batches: int) -> None:
    """Lease ``batches`` batches and give them back, as failed sends leave them (in flight)."""
    leased = [box.lease(30) for _ in range(batches)]
    for batch in leased:
        assert batch is not None
        box.release(batch.batch_id, "network down")


def build_image(workdir: Path) -> Image:
    """Delivered and owed rows in the main file, more owed rows only in the WAL.

    Of the owed rows, 60 are in flight in batches given back after a failed
    send: seqs 61-90 in the main file, and 91-120 whose lease is only in the
    WAL (a lease takes a batch given back first, then the oldest pending).
    """
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
    in_flight(box, 1)
    box.checkpoint()
    box.checkpoint()  # idle: TRUNCATE, so what follows is only in the WAL
    for start in range(0, 300, 30):
        box.enqueue_many(in_wal[start : start + 30])
    in_flight(box, 2)
    db, wal = path.read_bytes(), Path(f"{path}-wal").read_bytes()
    look = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    (width,) = look.execute("SELECT COUNT(*) FROM pragma_table_info('scans')").fetchone()
    look.close()
    owed = frozenset(s.event_id for s in (*first[60:], *in_wal))
    places = _places(db, wal, width)
    assert owed <= places.keys()
    image = Image(
        db=db,
        wal=wal,
        shm=Path(f"{path}-shm").read_bytes(),
        written={s.event_id: s.code for s in (*first, *in_wal)},
        owed=owed,
        places={e: places[e] for e in owed},
        commits=tuple(
            i for i, f in enumerate(range(32, len(wal), FRAME)) if wal[f + 4 : f + 8] != bytes(4)
        ),
    )
    box.close()
    return image


def _changed(before: bytes, after: bytes) -> list[int]:
    """The offsets of ``before`` whose byte ``after`` lost or changed."""
    out = []
    for at in range(0, len(before), 4096):
        if before[at : at + 4096] != after[at : at + 4096]:
            end = min(at + 4096, len(before))
            out += [i for i in range(at, end) if i >= len(after) or before[i] != after[i]]
    return out


def undamaged(image: Image, kind: str, damaged: bytes) -> frozenset[str]:
    """The owed event ids whose places ``damaged`` (the db or the WAL, by ``kind``) left intact."""
    if kind.startswith("db"):
        pages = {i // PAGE + 1 for i in _changed(image.db, damaged)}
        return frozenset(
            e
            for e, where in image.places.items()
            if not any(p in pages and f == "db" for f, p in where)
        )
    changed = _changed(image.wal, damaged)
    frames = {(i - 32) // FRAME for i in changed if i >= 32}
    # The frames whose seed (the stored checksum before them) is damaged.
    seeds = {(i - 32) // FRAME + 1 for i in changed if i >= 32 and 16 <= (i - 32) % FRAME < 24}
    seeds |= {0} if any(24 <= i < 32 for i in changed) else set()
    last = max((c for c in image.commits if c not in frames | seeds), default=-1)
    out = set()
    for e, where in image.places.items():
        in_wal = [n for f, n in where if f == "wal"]
        if not (set(in_wal) & frames) and (not in_wal or max(in_wal) <= last):
            out.add(e)
    return frozenset(out)


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
    undamaged: int = 0
    """Owed scans whose current version's bytes the damage left intact (see the module)."""
    undamaged_missing: list[str] = field(default_factory=list)
    """Of those, the event ids not delivered (must be none)."""
    damaged_delivered: int = 0
    """Owed scans whose current version was damaged, delivered from another intact copy."""
    sent_again: int = 0
    """Scans the image held as delivered that were delivered again (a stale copy salvaged;
    the service answers them as duplicates)."""

    @property
    def detected(self) -> bool:
        return self.reported

    @property
    def silent_loss(self) -> bool:
        return self.missing > 0 and not self.reported

    @property
    def failed(self) -> bool:
        """A crash, an altered code, an undamaged scan not delivered or a loss unreported."""
        return bool(self.crashed or self.altered or self.undamaged_missing or self.silent_loss)


def _later() -> datetime:
    """An hour from now: every lease the image's writer took has expired.

    A damaged WAL tail can drop the commit that gave a batch back after a
    failed send; its lease then runs to its end, as it would in a running
    daemon, before its rows are sent again.
    """
    return utc_now() + timedelta(hours=1)


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
        intact = undamaged(image, kind, db)
    else:
        wal, where = corrupt(wal, kind, rng)
        intact = undamaged(image, kind, wal)
    path.write_bytes(db)
    Path(f"{path}-wal").write_bytes(wal)
    Path(f"{path}-shm").write_bytes(image.shm)
    result = CaseResult(seed, kind, where, undamaged=len(intact), undamaged_missing=sorted(intact))
    sent: Counter[tuple[str, str]] = Counter()
    step = "open"
    try:
        with Outbox.open(path, clock=_later) as box:
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
    result.undamaged = len(intact)
    result.undamaged_missing = sorted(intact - delivered_ids)
    result.damaged_delivered = len((image.owed - intact) & delivered_ids)
    result.sent_again = len(delivered_ids - image.owed)
    result.reported |= result.export_damaged > 0
    return result


def summarize(results: list[CaseResult], owed: int) -> dict[str, object]:
    """The figures of a run (for the notes and bench JSON); ``owed``: the image's owed scans."""
    return {
        "cases": len(results),
        "by_kind": dict(Counter(r.kind for r in results)),
        "detected": sum(r.detected for r in results),
        "moved_aside": sum(r.moved_aside for r in results),
        "quarantined_rows": sum(r.quarantined for r in results),
        "cases_with_quarantine": sum(r.quarantined > 0 for r in results),
        "export_damaged_rows": sum(r.export_damaged for r in results),
        "cases_missing_owed_scans": sum(r.missing > 0 for r in results),
        "owed_scans": len(results) * owed,
        "undamaged_owed": sum(r.undamaged for r in results),
        "undamaged_delivered": sum(r.undamaged - len(r.undamaged_missing) for r in results),
        "undamaged_missing": sum(len(r.undamaged_missing) for r in results),
        "damaged_owed": len(results) * owed - sum(r.undamaged for r in results),
        "damaged_delivered": sum(r.damaged_delivered for r in results),
        "damaged_not_delivered": sum(r.missing - len(r.undamaged_missing) for r in results),
        "settled_sent_again": sum(r.sent_again for r in results),
        "silent_losses": sum(r.silent_loss for r in results),
        "silently_altered_codes": sum(len(r.altered) for r in results),
        "crashes": sum(bool(r.crashed) for r in results),
    }
