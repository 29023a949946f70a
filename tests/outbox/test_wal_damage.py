"""A damaged WAL after a kill is detected, kept aside, alarmed, and what it held recovered.

Issue 16 item 6: a flipped bit in the WAL after a kill silently dropped 2,100
ACKed scans: SQLite replays frames up to the first bad checksum and ignores
every frame after it.  The writer here is a real process killed without a
checkpoint (``os._exit``), and the WAL it leaves is damaged byte by byte.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from scanner_agent.outbox import EventResult, Outbox
from scanner_agent.outbox._wal import inspect_wal
from tests.support.outbox import cn20_scans

ROOT = Path(__file__).resolve().parents[2]
GROUPS, PER_GROUP = 40, 50
WRITER = f"""
import os, sys
sys.path.insert(0, {str(ROOT)!r})
from scanner_agent.outbox import Outbox
from tests.support.outbox import cn20_scans
box = Outbox.open(sys.argv[1])
for g in range({GROUPS}):
    box.enqueue_many(cn20_scans(g * {PER_GROUP}, {PER_GROUP}))  # each committed (ACKed)
os._exit(0)  # killed: no checkpoint, the WAL stays as written
"""


def killed_writer(path: Path) -> list[str]:
    """Run a writer that commits GROUPS groups and dies; the codes it committed."""
    subprocess.run([sys.executable, "-c", WRITER, str(path)], check=True, timeout=120)
    return [s.code for s in cn20_scans(0, GROUPS * PER_GROUP)]


def frame_offset(wal: Path, index: int) -> int:
    page_size = int.from_bytes(wal.read_bytes()[8:12], "big")
    return 32 + index * (24 + page_size)


def flip(path: Path, offset: int, bit: int = 0) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ (1 << bit)]))


def held_codes(box: Outbox) -> list[str]:
    return sorted(r.code for r in box.rows(limit=100_000))


def test_an_intact_wal_left_by_a_kill_is_not_damage(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    codes = killed_writer(path)
    report = inspect_wal(Path(f"{path}-wal"))
    assert report is not None
    assert report.frames > 0
    assert report.kept == report.frames
    assert not report.damaged
    with Outbox.open(path) as box:
        assert held_codes(box) == sorted(codes)
        assert box.alarms == []
    assert not list(tmp_path.glob("*wal-damaged*"))


@pytest.mark.parametrize("where", ["page", "frame header", "salt"])
def test_a_flipped_bit_in_the_wal_is_an_alarm_and_every_acked_scan_is_recovered(
    tmp_path: Path, where: str
) -> None:
    path = tmp_path / "o.db"
    wal = Path(f"{path}-wal")
    codes = killed_writer(path)
    frames = inspect_wal(wal)
    assert frames is not None
    at = frame_offset(wal, frames.frames // 4)
    flip(wal, {"page": at + 24 + 1000, "frame header": at + 2, "salt": at + 9}[where], bit=3)
    report = inspect_wal(wal)
    assert report is not None
    assert report.damaged  # without the check, SQLite replays only the frames before it
    assert report.kept < frames.frames // 4 + 1
    damaged_copy = wal.read_bytes()
    with Outbox.open(path) as box:
        (alarm,) = box.alarms
        assert "WAL" in alarm
        assert f"{report.stranded_commits} committed transactions" in alarm
        assert held_codes(box) == sorted(codes)  # all of them, none twice
        sent = []
        while (batch := box.lease(1000)) is not None:
            sent += [e.code for e in batch.events]
            box.settle(batch.batch_id, {e.event_id: EventResult("accepted") for e in batch.events})
        assert sorted(sent) == sorted(codes)
    (aside,) = tmp_path.glob("o.db.wal-damaged-*[0-9Z]")
    assert Path(f"{aside}-wal").read_bytes() == damaged_copy  # kept as found


def test_a_torn_write_after_the_last_commit_is_unacknowledged_not_damage(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    wal = Path(f"{path}-wal")
    codes = killed_writer(path)
    data = wal.read_bytes()
    last = frame_offset(wal, inspect_wal(wal).frames - 1)  # type: ignore[union-attr]
    with wal.open("ab") as f:  # a next frame, half written when the power went
        f.write(data[last : last + 2000])
    report = inspect_wal(wal)
    assert report is not None
    assert report.committed == report.kept  # the writer's -shm agrees: nothing committed lost
    assert not report.damaged
    with Outbox.open(path) as box:
        assert box.alarms == []
        assert held_codes(box) == sorted(codes)


def test_a_wal_cut_short_is_an_alarm_the_writers_shm_still_counts_its_frames(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.db"
    wal = Path(f"{path}-wal")
    killed_writer(path)
    whole = inspect_wal(wal)
    assert whole is not None
    assert whole.committed == whole.frames
    with wal.open("r+b") as f:
        f.truncate(frame_offset(wal, whole.frames // 2))
    report = inspect_wal(wal)
    assert report is not None
    assert report.cut_short
    with Outbox.open(path) as box:
        (alarm,) = box.alarms
        assert f"had committed {whole.frames} frames" in alarm
    assert list(tmp_path.glob("o.db.wal-damaged-*"))


def test_garbage_in_place_of_a_wal_never_stops_the_open(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    killed_writer(path)
    wal = Path(f"{path}-wal")
    data = bytearray(wal.read_bytes())
    data[32:] = os.urandom(len(data) - 32)
    wal.write_bytes(bytes(data))
    with Outbox.open(path) as box:
        box.stats()


def _flip_at(at: int, mask: int) -> Callable[[bytes], bytes]:
    return lambda h: h[:at] + bytes([h[at] ^ mask]) + h[at + 1 :]


HEADER_DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "magic": _flip_at(3, 0x01),
    "page size": _flip_at(10, 0x20),
    "checkpoint sequence": _flip_at(13, 0x04),
    "salt": _flip_at(17, 0x80),
    "header checksum": _flip_at(29, 0x02),
    "zeroed": lambda h: bytes(len(h)),
    "random bytes": lambda h: bytes((b * 151 + 7) & 0xFF for b in h),
}


@pytest.mark.parametrize("where", list(HEADER_DAMAGE))
def test_a_damaged_wal_header_is_an_alarm_and_every_acked_scan_is_recovered(
    tmp_path: Path, where: str
) -> None:
    """SQLite ignores a whole WAL whose header fails its checksum: every frame, all committed.

    The header is 32 bytes of a file of megabytes, so the random corruption fuzz
    rarely hits it; here each of its fields is damaged in turn.
    """
    path = tmp_path / "o.db"
    wal = Path(f"{path}-wal")
    codes = killed_writer(path)
    data = wal.read_bytes()
    wal.write_bytes(HEADER_DAMAGE[where](data[:32]) + data[32:])
    damaged_copy = wal.read_bytes()
    with Outbox.open(path) as box:
        (alarm,) = box.alarms
        assert "WAL" in alarm
        assert "header" in alarm, alarm
        assert held_codes(box) == sorted(codes)  # all of them, none twice
    (aside,) = tmp_path.glob("o.db.wal-damaged-*[0-9Z]")
    assert Path(f"{aside}-wal").read_bytes() == damaged_copy  # kept as found


@pytest.mark.parametrize("keep", [1, 16, 31])
def test_a_wal_cut_inside_its_header_is_an_alarm(tmp_path: Path, keep: int) -> None:
    """Nothing of the frames is left to recover; the writer's -shm still counts them.

    (An empty WAL is not damage: a TRUNCATE checkpoint leaves one, and a power
    cut can leave its -shm unflushed, still counting the frames checkpointed.)
    """
    path = tmp_path / "o.db"
    wal = Path(f"{path}-wal")
    killed_writer(path)
    with wal.open("r+b") as f:
        f.truncate(keep)
    with Outbox.open(path) as box:
        (alarm,) = box.alarms
        assert "WAL" in alarm, alarm
        box.stats()


def test_a_damaged_wal_header_without_its_shm_is_recovered_from_the_frames(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    wal = Path(f"{path}-wal")
    codes = killed_writer(path)
    Path(f"{path}-shm").unlink()
    data = wal.read_bytes()
    wal.write_bytes(bytes(32) + data[32:])
    with Outbox.open(path) as box:
        (alarm,) = box.alarms
        assert "header" in alarm
        assert held_codes(box) == sorted(codes)
