"""`queue salvage`: the readable scans still owed come back from a damaged file, once.

Issue 16 item 6: a file moved aside as damaged kept its pending scans forever,
with no tool to recover them.  These tests damage real files page by page.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scanner_agent.outbox import EventResult, NewScan, Outbox
from tests.outbox.damage import damage_code, row_offset
from tests.support.outbox import cn20_scans

PAGE = 4096


def moved_aside(tmp_path: Path) -> tuple[Path, Path, list[NewScan], list[NewScan], set[str]]:
    """A live outbox whose predecessor was moved aside with a zeroed table page.

    Returns the live path, the moved-aside file, the scans delivered before the
    damage, the ones still owed, and the codes on the zeroed page.
    """
    live = tmp_path / "outbox.db"
    delivered, owed = cn20_scans(0, 100), cn20_scans(100, 600)
    with Outbox.open(live) as box:
        box.enqueue_many(delivered)
        batch = box.lease(100)
        assert batch is not None
        box.settle(batch.batch_id, {e.event_id: EventResult("accepted") for e in batch.events})
        box.enqueue_many(owed)
    page = row_offset(live, owed[300]) // PAGE
    data = bytearray(live.read_bytes())
    lost = {s.code for s in owed if s.code.encode() in data[page * PAGE : (page + 1) * PAGE]}
    data[page * PAGE : (page + 1) * PAGE] = bytes(PAGE)
    live.write_bytes(data)
    with Outbox.open(live) as box:  # fails its check: moved aside, a fresh one started
        assert box.alarms
    (aside,) = tmp_path.glob("outbox.db.corrupt-*[0-9Z]")
    return live, aside, delivered, owed, lost


def test_every_readable_owed_scan_comes_back_and_only_once(tmp_path: Path) -> None:
    live, aside, delivered, owed, lost = moved_aside(tmp_path)
    assert 0 < len(lost) < 100
    before = hashlib.sha256(aside.read_bytes()).hexdigest()
    with Outbox.open(live) as box:
        report = box.salvage(aside)
        held = {r.code for r in box.rows(limit=10_000)}
        assert report.recovered == len(held) == len(owed) - len(lost)
        assert held == {s.code for s in owed} - lost
        assert not held & {s.code for s in delivered}  # delivered ones are never sent again
        assert report.settled == len(delivered)
        assert report.unreadable  # the zeroed page is reported, not skipped in silence
        again = box.salvage(aside)
        assert (again.recovered, again.already_held) == (0, len(held))
        assert len(box.rows(limit=10_000)) == len(held)
    assert hashlib.sha256(aside.read_bytes()).hexdigest() == before  # only read


def test_salvaged_scans_keep_their_event_ids_and_are_delivered(tmp_path: Path) -> None:
    live, aside, _delivered, owed, lost = moved_aside(tmp_path)
    with Outbox.open(live) as box:
        box.salvage(aside)
        sent = []
        while (batch := box.lease(500)) is not None:
            sent += [(e.event_id, e.code) for e in batch.events]
            box.settle(batch.batch_id, {e.event_id: EventResult("accepted") for e in batch.events})
    assert sorted(sent) == sorted((s.event_id, s.code) for s in owed if s.code not in lost)


def test_damaged_rows_of_a_live_file_are_reported_and_the_file_left_as_it_was(
    tmp_path: Path,
) -> None:
    damaged = tmp_path / "damaged.db"
    scans = cn20_scans(0, 50)
    with Outbox.open(damaged) as box:
        box.enqueue_many(scans)
    damage_code(damaged, scans[10])
    damage_code(damaged, scans[20], value=ord("3"))
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with Outbox.open(tmp_path / "live.db") as box:
        report = box.salvage(damaged)
    assert report.recovered == 48
    assert [d["seq"] for d in report.damaged] == [11, 21]
    assert {d["problem"] for d in report.damaged} == {"code is not UTF-8", "checksum mismatch"}
    for name, data in files.items():
        assert (tmp_path / name).read_bytes() == data


def test_the_live_outbox_itself_is_refused(tmp_path: Path) -> None:
    with Outbox.open(tmp_path / "o.db") as box, pytest.raises(ValueError, match="live outbox"):
        box.salvage(tmp_path / "o.db")


def test_queue_salvage_prints_a_json_report_and_says_so_in_its_exit_status(tmp_path: Path) -> None:
    live, aside, _delivered, owed, lost = moved_aside(tmp_path)

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "scanner_agent",
                "queue",
                "salvage",
                str(aside),
                "--outbox",
                str(live),
                "--json",
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    dry = run("--dry-run")
    assert json.loads(dry.stdout)["recovered"] == len(owed) - len(lost)
    with Outbox.open(live) as box:
        assert box.rows() == []
    proc = run()
    report = json.loads(proc.stdout)
    assert proc.returncode == 3  # ran, and found an unreadable stretch
    assert report["recovered"] == len(owed) - len(lost)
    assert report["unreadable"][0]["error"]
    assert json.loads(run().stdout)["already_held"] == len(owed) - len(lost)
