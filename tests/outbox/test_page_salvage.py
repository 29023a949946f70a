"""Salvage reads rows the B-tree cannot reach straight from the table's leaf pages.

Issue 16: "every undamaged row delivered".  A damaged *interior* page of the
scans table leaves every row under it intact but unreachable through SQLite,
so salvage reported them missing.  These tests damage a real file's interior
page (in the main file, or in its WAL) and check that every row whose checksum
verifies comes back, every other one is reported, never delivered, and that a
stale copy of a row (a page freed, the main file's copy of a page the WAL
rewrote) never outweighs its delivered version.
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner_agent.outbox import EventResult, NewScan, Outbox, _pages
from scanner_agent.outbox._pages import leaf_cells
from tests.outbox.corruption import drain
from tests.outbox.damage import damage_code
from tests.support.outbox import cn20_scans

PAGE = 4096
WIDTH = 25
"""The scans table's columns in this build."""


def scans_root(path: Path) -> int:
    """The root page number of the scans table (an interior page once the table is large)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'scans'").fetchone()
    finally:
        db.close()
    return int(root)


def zero_page(path: Path, number: int, *, expect: int | None = 0x05) -> None:
    """Zero page ``number`` of ``path`` (by default it must be a table interior page)."""
    data = bytearray(path.read_bytes())
    if expect is not None:
        assert data[(number - 1) * PAGE] == expect
    data[(number - 1) * PAGE : number * PAGE] = bytes(PAGE)
    path.write_bytes(data)


def deliver(box: Outbox, n: int) -> list[str]:
    """Lease and accept ``n`` scans; their event ids."""
    batch = box.lease(n)
    assert batch is not None
    box.settle(batch.batch_id, {e.event_id: EventResult("accepted") for e in batch.events})
    return [e.event_id for e in batch.events]


def damaged_copy(tmp_path: Path) -> tuple[Path, list[NewScan], list[NewScan], NewScan, set[int]]:
    """A closed outbox copy whose scans root (interior) page is zeroed, plus one altered code.

    Returns the copy, the scans delivered, the scans owed, the owed scan whose
    code was altered on its leaf page, and the seqs written without checksums.
    """
    path = tmp_path / "old.db"
    delivered, owed = cn20_scans(0, 200), cn20_scans(200, 2800)
    with Outbox.open(path) as box:
        box.enqueue_many(delivered)
        deliver(box, 200)
        box.enqueue_many(owed)
    db = sqlite3.connect(path)  # rows from before checksums existed: the last ten
    db.execute("UPDATE scans SET crc = NULL WHERE seq > 2990")
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    unchecked = set(range(2991, 3001))
    altered = owed[1000]
    damage_code(path, altered, at=7, value=ord("7") if altered.code[7] != "7" else ord("6"))
    zero_page(path, scans_root(path))  # the tree's only way in
    return path, delivered, owed, altered, unchecked


def test_rows_under_a_damaged_interior_page_come_back_when_their_checksum_verifies(
    tmp_path: Path,
) -> None:
    source, delivered, owed, altered, unchecked = damaged_copy(tmp_path)
    with Outbox.open(tmp_path / "outbox.db") as box:
        report = box.salvage(source)
        held = {r.code: r for r in box.rows(limit=10_000)}
    expected = {s.code for s in owed[: 3000 - 200 - len(unchecked)]} - {altered.code}
    assert set(held) == expected  # every verified owed row, none of the delivered ones
    assert report.recovered == len(expected)
    assert report.settled == len(delivered)
    assert report.from_pages == len(expected) + len(delivered)
    assert report.pages_unverified == len(unchecked)  # no checksum: never taken from pages
    (bad,) = report.damaged
    assert "checksum" in bad["problem"]
    assert altered.event_id.encode().hex() in bad["content_hex"]
    assert report.unreadable  # the B-tree's failure is still reported


def test_salvaging_twice_takes_nothing_the_second_time(tmp_path: Path) -> None:
    source, *_ = damaged_copy(tmp_path)
    with Outbox.open(tmp_path / "outbox.db") as box:
        first = box.salvage(source)
        second = box.salvage(source)
    assert first.recovered > 2000
    assert second.recovered == 0
    assert second.already_held == first.recovered


def test_an_intact_file_needs_no_page_scan_and_reports_nothing(tmp_path: Path) -> None:
    source = tmp_path / "old.db"
    with Outbox.open(source) as box:
        box.enqueue_many(cn20_scans(0, 1500))
        deliver(box, 100)
    with Outbox.open(tmp_path / "outbox.db") as box:
        report = box.salvage(source)
    assert (report.recovered, report.settled, report.from_pages) == (1400, 100, 0)
    assert report.damaged == []
    assert report.unreadable == []
    assert report.pages_unverified == 0


def leaf_of(data: bytes, seq: int) -> int:
    """The page number of the (only) leaf cell of ``seq`` in the file image ``data``."""
    (page,) = {c.page for c in leaf_cells(data, WIDTH) if c.rowid == seq}
    return page


def stale_file(tmp_path: Path) -> tuple[Path, list[str], list[NewScan], int]:
    """A file whose first leaf page also survives as a stale copy from before delivery.

    The copy is appended past the end of the tree, as a freed page is left
    when the freelist that named it is lost; the scans root is zeroed.  Returns
    the file, the event ids delivered, all scans, and the leaf's page number.
    """
    path = tmp_path / "old.db"
    scans = cn20_scans(0, 600)
    with Outbox.open(path) as box:
        box.enqueue_many(scans)
        box.checkpoint()
        before = path.read_bytes()  # every row pending
        done = deliver(box, 20)
    data = path.read_bytes()
    page = leaf_of(data, 1)
    assert leaf_of(before, 1) == page
    path.write_bytes(data + before[(page - 1) * PAGE : page * PAGE])
    zero_page(path, scans_root(path))
    return path, done, scans, page


def test_a_stale_owed_copy_never_outweighs_the_delivered_version(tmp_path: Path) -> None:
    source, done, scans, _ = stale_file(tmp_path)
    with Outbox.open(tmp_path / "outbox.db") as box:
        report = box.salvage(source)
        held = {r.event_id for r in box.rows(limit=10_000)}
    assert held == {s.event_id for s in scans} - set(done)
    assert report.settled == len(done)


def test_a_stale_copy_alone_comes_back_under_its_own_event_id(tmp_path: Path) -> None:
    """When the delivered version itself is lost, the stale copy is all there is.

    It cannot be told from an owed row, so it is queued again, under its own
    event id: the service keys on it and answers ``duplicate``, and an outbox
    that still holds the event (the WAL's salvage into the same file) skips it.
    """
    source, done, scans, page = stale_file(tmp_path)
    zero_page(source, page, expect=0x0D)  # the delivered version's leaf
    with Outbox.open(tmp_path / "fresh.db") as box:
        report = box.salvage(source)
        held = {r.event_id for r in box.rows(limit=10_000)}
    assert held & set(done)  # the stale copies of the lost page's delivered rows
    assert held <= {s.event_id for s in scans}  # no new ids, nothing altered
    with Outbox.open(tmp_path / "same.db") as box:
        box.enqueue_many(scans)
        deliver(box, 20)
        again = box.salvage(source)
    assert again.recovered == 0
    assert again.already_held == report.recovered


def test_rows_only_in_the_wal_come_back_when_its_copy_of_an_interior_page_is_damaged(
    tmp_path: Path,
) -> None:
    """A kill leaves rows only in the WAL; the frame of the scans root is damaged there."""
    live = tmp_path / "live.db"
    first, later = cn20_scans(0, 300), cn20_scans(300, 900)
    box = Outbox.open(live)
    box.enqueue_many(first)
    box.checkpoint()
    box.checkpoint()  # idle: TRUNCATE
    for start in range(0, len(later), 50):
        box.enqueue_many(later[start : start + 50])
    path = tmp_path / "outbox.db"
    for suffix in ("", "-wal", "-shm"):
        shutil.copyfile(f"{live}{suffix}", f"{path}{suffix}")
    box.close()
    root = scans_root(live)
    wal = bytearray(Path(f"{path}-wal").read_bytes())
    frames = [
        i
        for i in range((len(wal) - 32) // (24 + PAGE))
        if struct.unpack_from(">I", wal, 32 + i * (24 + PAGE))[0] == root
    ]
    at = 32 + frames[-1] * (24 + PAGE) + 24  # the page of the root's last frame, not its header
    assert wal[at] == 0x05
    wal[at : at + PAGE] = bytes(PAGE)
    Path(f"{path}-wal").write_bytes(wal)
    sent: Counter[tuple[str, str]] = Counter()
    with Outbox.open(path) as box:
        assert any("WAL" in a for a in box.alarms)
        drain(box, sent)
    assert sorted(sent) == sorted((s.event_id, s.code) for s in (*first, *later))


def image(tmp_path: Path) -> bytes:
    path = tmp_path / "small.db"
    with Outbox.open(path) as box:
        box.enqueue_many(cn20_scans(0, 300))
        box.enqueue_many([s._replace(raw="R" * 10000) for s in cn20_scans(300, 3)])  # overflow
    return path.read_bytes()


def test_a_clean_file_s_leaf_pages_hold_every_row_overflow_included(tmp_path: Path) -> None:
    data = image(tmp_path)
    db = sqlite3.connect(tmp_path / "small.db")
    width = len(db.execute("PRAGMA table_info(scans)").fetchall())
    db.close()
    assert width == WIDTH
    cells = {c.rowid: c for c in leaf_cells(data, width)}
    assert sorted(cells) == list(range(1, 304))
    assert "R" * 10000 in cells[302].values
    assert len(cells[302].overflow) == 2
    assert cells[1].overflow == ()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=3 * PAGE),
    st.integers(min_value=1, max_value=30),
)
def test_any_bytes_give_rows_or_none_never_an_error(data: bytes, width: int) -> None:
    frames = [(n, data[i : i + PAGE]) for n, i in enumerate(range(0, len(data), PAGE), 1)]
    for cell in leaf_cells(data, width, frames):
        assert isinstance(cell.rowid, int)
        assert len(cell.values) == width


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=40))
def test_a_damaged_real_file_gives_rows_or_none_never_an_error(
    tmp_path: Path, pokes: list[tuple[int, int]]
) -> None:
    data = bytearray(_real())
    for at, value in pokes:
        data[at % len(data)] = value
    for cell in leaf_cells(bytes(data), WIDTH):
        assert len(cell.values) == WIDTH


_CACHE: list[bytes] = []


def _real() -> bytes:
    """A small real outbox file with overflow rows, built once."""
    if not _CACHE:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            _CACHE.append(image(Path(tmp)))
    return _CACHE[0]


def test_overflow_chains_that_loop_or_share_pages_end_within_the_budget(tmp_path: Path) -> None:
    data = bytearray(image(tmp_path))
    pages = len(data) // PAGE
    for n in range(2, pages + 1):  # every overflow page points back at itself
        at = (n - 1) * PAGE
        if data[at] == 0 and data[at + 4 : at + 8] == b"RRRR":
            struct.pack_into(">I", data, at, n)
    cells = list(leaf_cells(bytes(data), WIDTH))
    assert {c.rowid for c in cells} == set(range(1, 301))  # the looping rows are dropped


def test_cells_pointing_into_one_another_cost_a_few_pages_worth_not_a_page_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1,362 distinct pointers into one run of bytes: a payload parsed from each of them
    would be quadratic in the page size (about 40 times the page, here, per page)."""
    parsed: list[int] = []
    real = _pages._record

    def counting(payload: bytes, width: int) -> list[object]:
        parsed.append(len(payload))
        return real(payload, width)

    monkeypatch.setattr(_pages, "_record", counting)
    data = bytearray(3 * PAGE)
    page = PAGE  # page 2
    data[page] = 0x0D
    count = 1362
    struct.pack_into(">H", data, page + 3, count)
    first = 8 + 2 * count
    struct.pack_into(f">{count}H", data, page + 8, *range(first, first + count))
    data[page + first : page + PAGE] = b"\x7f" * (PAGE - first)  # payload 127 bytes of 0x7f
    assert list(leaf_cells(bytes(data), WIDTH)) == []
    assert 0 < sum(parsed) <= 4 * PAGE
