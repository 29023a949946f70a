"""Damaging real outbox files byte by byte, for the storage-fault tests."""

from __future__ import annotations

from pathlib import Path

from scanner_agent.outbox import NewScan


def row_offset(path: Path, scan: NewScan) -> int:
    """Where ``scan``'s code starts in its table row in ``path`` (not in an index).

    The row stores the event id and the code next to each other; no index does
    (the event id's index holds the id and the rowid, the code's the code, bill
    and action), so this finds the table's copy only.
    """
    data = path.read_bytes()
    at = data.find(scan.event_id.encode() + scan.code.encode())
    assert at >= 0, f"row of {scan.code} not in {path} (still in the WAL?)"
    assert data.find(scan.event_id.encode() + scan.code.encode(), at + 1) < 0
    return at + len(scan.event_id)


def poke(path: Path, offset: int, value: int) -> None:
    """Write one byte at ``offset`` of ``path``, in place (as a failing disk would).

    The byte must change: a "damage" that writes what is already there damages
    nothing, and a test built on it would pass or fail by chance.
    """
    with path.open("r+b") as f:
        f.seek(offset)
        assert f.read(1) != bytes([value]), f"byte {offset} of {path} is already {value:#04x}"
        f.seek(offset)
        f.write(bytes([value]))


def other_hex_digit(path: Path, offset: int) -> int:
    """A hex digit other than the one at ``offset`` of ``path`` (a damaged event id)."""
    current = path.read_bytes()[offset]
    return ord("1") if current == ord("0") else ord("0")


def damage_code(path: Path, scan: NewScan, *, at: int = 5, value: int = 0xFF) -> None:
    """Replace byte ``at`` of ``scan``'s code in its row with ``value`` (0xFF: not UTF-8)."""
    poke(path, row_offset(path, scan) + at, value)
