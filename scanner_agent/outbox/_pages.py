"""Reading table rows straight from a database file's pages, as SQLite's ``.recover`` does.

Why: salvage reads rows through SQLite's B-tree, so a row whose own bytes are
intact but which lies under a damaged *interior* page (or past a stretch the
probing skips) cannot be reached, and was reported missing rather than
delivered (issue 16).  The rows themselves sit on *table-leaf* pages, which
can be found without the tree.  This module parses the file format
(https://www.sqlite.org/fileformat2.html) with no SQLite at all:

* the 100-byte header: page size (offset 16; 1 means 65,536), reserved bytes
  per page (20), the first freelist trunk page (32), the size in pages (28);
* each page's b-tree header (at offset 100 on page 1, else 0): type 0x0D is
  a table leaf, then its cell count and cell pointer array;
* a cell: payload length varint, rowid varint, the payload's local part and,
  past the local limit, a 4-byte first overflow page whose chain (next page
  number, then content) is followed until the payload is complete;
* the payload, a record: header length varint, serial types, values.

Pages are read from the main file and from the committed frames of its WAL
(given by the caller: :func:`~scanner_agent.outbox._wal.committed_frames`).
Each cell comes with its *rank*: -1 for the main file's copy of a page, ``i``
for the WAL's ``i``-th frame, so a later version of a row can be told from an
earlier one.  An overflow page, the header and the freelist are read from the
latest version of their page.  The page size is the WAL's when there is one
(its header is checksummed), else the header's when the file's length is a
multiple of it, else the one the header's page count implies, else 4,096 (the
outbox's).

Pages on the freelist are skipped (they hold copies of rows deleted, pruned
or moved, not the table's) when the freelist is sound (see ``_Image.free``).  Anything inconsistent
drops the cell or the page, never the scan: random bytes give no cells or some
cells, never an exception, and the work is linear in the file: every page is
parsed at most once per version, each distinct cell pointer once, the payload
bytes parsed per page are capped at four pages' worth (cells pointing into one
another), overflow pages read in all at twice the pages there are, and the
freelist's entries at the pages there are.  What comes out is only
*candidate* rows, possibly stale copies: the caller must verify each (salvage
checks the row checksum, takes nothing it cannot verify, and chooses between
versions).
"""

from __future__ import annotations

import struct
from collections.abc import Container, Iterator, Sequence
from typing import NamedTuple

__all__ = ["DEFAULT_PAGE_SIZE", "Cell", "leaf_cells"]

DEFAULT_PAGE_SIZE = 4096
"""The outbox's page size, used when neither the header nor a WAL gives a sound one."""
_LEAF = 0x0D


class Cell(NamedTuple):
    """One record found on a table-leaf page, and where."""

    rowid: int
    values: list[object]
    """int, float, None, str (text that is UTF-8), bytes (a blob, or text that is not UTF-8)."""
    rank: int
    """-1: the main file's copy of the page; ``i``: the WAL's ``i``-th frame (higher: newer)."""
    page: int
    """The leaf page's number."""
    overflow: tuple[int, ...]
    """The overflow pages the payload continued on, in order."""


class _Bad(Exception):
    """Inside this module only: the bytes being parsed are inconsistent."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    """The varint at ``buf[i]`` and the offset after it."""
    v = 0
    for k in range(9):
        if i + k >= len(buf):
            raise _Bad
        b = buf[i + k]
        if k == 8:
            return (v << 8) | b, i + 9
        v = (v << 7) | (b & 0x7F)
        if b < 0x80:
            return v, i + k + 1
    raise _Bad  # unreachable


def _sound(size: int) -> bool:
    return 512 <= size <= 65536 and not size & (size - 1)


def _page_size(head: bytes, length: int, frames: Sequence[tuple[int, bytes]]) -> int:
    """The page size to read with (see the module for the order of trust)."""
    if frames and _sound(len(frames[0][1])):
        return len(frames[0][1])
    if len(head) >= 100 and head.startswith(b"SQLite format 3\x00"):
        size = struct.unpack_from(">H", head, 16)[0]
        size = 65536 if size == 1 else size
        if _sound(size) and length % size == 0:
            return size
        count = int(struct.unpack_from(">I", head, 28)[0])
        if count and length % count == 0 and _sound(length // count):
            return length // count
    return DEFAULT_PAGE_SIZE


class _Image:
    """The pages of a file and its committed WAL frames: the latest version of each."""

    def __init__(self, data: bytes, frames: Sequence[tuple[int, bytes]]) -> None:
        self.data = data
        self.size = _page_size(bytes(data[:100]), len(data), frames)
        self.frames = [(n, p) if n >= 1 and len(p) == self.size else (0, b"") for n, p in frames]
        """The frames in order; one of another page size or page 0 is left out as ``(0, b"")``."""
        self.main_pages = len(data) // self.size
        self.newest = {n: p for n, p in self.frames if n}
        head = self.page(1) or b""
        usable = self.size - head[20] if len(head) > 20 else self.size
        self.usable = usable if usable >= 480 else self.size
        self.budget = 2 * (self.main_pages + len(self.frames)) + 16
        """Overflow pages that may still be read (bounds the work on hostile bytes)."""

    def page(self, n: int) -> bytes | None:
        """The latest version of page ``n`` (None: no such page)."""
        if n in self.newest:
            return self.newest[n]
        if 1 <= n <= self.main_pages:
            return bytes(self.data[(n - 1) * self.size : n * self.size])
        return None

    def free(self) -> set[int]:
        """The free pages (trunks and leaves) of the latest page 1, if the freelist is sound.

        Sound: every page it lists exists, and they are as many as the header
        says (offset 36).  A damaged freelist could name live leaf pages, whose
        rows would then be skipped, so none is trusted (the caller's choice
        between versions of a row then applies to stale free pages too).
        """
        head = self.page(1)
        if not head or len(head) < 40:
            return set()
        trunk, expected = struct.unpack_from(">II", head, 32)
        free: set[int] = set()
        entries = 0
        while trunk and trunk not in free:
            page = self.page(trunk)
            if page is None:
                return set()
            free.add(trunk)
            nxt, count = struct.unpack_from(">II", page, 0)
            entries += count
            if count > (self.usable - 8) // 4 or entries > self.main_pages + len(self.newest):
                return set()  # more leaves than pages: walking them all would be the hostile part
            leaves = struct.unpack_from(f">{count}I", page, 8)
            if not all(n in self.newest or 1 <= n <= self.main_pages for n in leaves):
                return set()
            free.update(leaves)
            trunk = nxt
        return free if len(free) == expected else set()

    def payload(self, page: bytes, i: int, total: int) -> tuple[bytes, tuple[int, ...]]:
        """A cell's payload of ``total`` bytes from ``page[i]`` on, and its overflow pages."""
        usable = self.usable
        most = usable - 35
        if total <= most:
            if i + total > usable:
                raise _Bad
            return page[i : i + total], ()
        least = (usable - 12) * 32 // 255 - 23
        local = least + (total - least) % (usable - 4)
        local = local if local <= most else least
        if i + local + 4 > usable:
            raise _Bad
        parts = [page[i : i + local]]
        have = local
        nxt = struct.unpack_from(">I", page, i + local)[0]
        chain: list[int] = []
        while have < total:
            more = self.page(nxt) if nxt not in chain and self.budget > 0 else None
            if more is None:
                raise _Bad
            self.budget -= 1
            chain.append(nxt)
            take = min(usable - 4, total - have)
            parts.append(more[4 : 4 + take])
            have += take
            nxt = struct.unpack_from(">I", more, 0)[0]
        return b"".join(parts), tuple(chain)


_PAGE_READS = 4
"""Payload bytes parsed per leaf page, in pages' worth: a sound page needs at most one."""
_FIXED = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}
"""Serial types 1-6: big-endian two's-complement integers of these many bytes."""


def _record(payload: bytes, width: int) -> list[object]:
    """The values of a record of ``width`` columns (see :class:`Cell` for their types)."""
    head, i = _varint(payload, 0)
    if head > len(payload) or head < 1:
        raise _Bad
    types = []
    while i < head:
        t, i = _varint(payload, i)
        types.append(t)
    if i != head or len(types) != width:
        raise _Bad
    at = head
    values: list[object] = []
    for t in types:
        if t in (0, 8, 9):  # NULL, the constants 0 and 1 (no bytes)
            values.append(None if t == 0 else t - 8)
            continue
        if t in (10, 11):  # reserved
            raise _Bad
        n = _FIXED.get(t) or (8 if t == 7 else (t - 12) // 2)
        if at + n > len(payload):
            raise _Bad
        raw = payload[at : at + n]
        at += n
        if t in _FIXED:
            values.append(int.from_bytes(raw, "big", signed=True))
        elif t == 7:
            values.append(struct.unpack(">d", raw)[0])
        elif t % 2:  # text: odd types from 13
            try:
                values.append(raw.decode())
            except UnicodeDecodeError:
                values.append(raw)
        else:  # blob: even types from 12
            values.append(raw)
    if at != len(payload):
        raise _Bad
    return values


def _cells(
    image: _Image, page: bytes, number: int, rank: int, width: int, skip: Container[int]
) -> Iterator[Cell]:
    """The records of ``width`` columns on one table-leaf page, rowids in ``skip`` left out."""
    hdr = 100 if number == 1 else 0
    if len(page) < hdr + 8 or page[hdr] != _LEAF:
        return
    count = struct.unpack_from(">H", page, hdr + 3)[0]
    first = hdr + 8 + 2 * count
    if first > image.usable:
        return
    pointers = dict.fromkeys(struct.unpack_from(f">{count}H", page, hdr + 8))
    spent = 0
    for ptr in pointers:
        if not first <= ptr < image.usable:
            continue
        try:
            total, i = _varint(page, ptr)
            rowid, i = _varint(page, i)
            rowid = rowid if rowid < 1 << 63 else rowid - (1 << 64)
            if rowid in skip:
                continue
            # A sound page's cells do not overlap, so their local parts add up to less than
            # the page; damaged pointers into one another's bytes could make it quadratic.
            spent += min(total, image.usable)
            if spent > _PAGE_READS * image.usable:
                return
            payload, chain = image.payload(page, i, total)
            values = _record(payload, width)
        except (_Bad, struct.error):
            continue
        yield Cell(rowid, values, rank, number, chain)


def leaf_cells(
    data: bytes,
    width: int,
    frames: Sequence[tuple[int, bytes]] = (),
    *,
    skip: Container[int] = frozenset(),
) -> Iterator[Cell]:
    """Every record of ``width`` columns on a table-leaf page of the file ``data`` or its WAL.

    ``data`` is the main file (bytes or a read-only ``mmap``), ``frames`` the
    (page number, page) of its WAL's committed frames in order.  The main
    file's pages first, in page order, then the frames; pages free in the
    latest version are skipped, and so are the rowids in ``skip`` (before
    their payload is read).  Never raises on any bytes; see the module.
    """
    image = _Image(data, frames)
    try:
        free = image.free()
    except struct.error:
        free = set()
    size = image.size
    for number in range(1, image.main_pages + 1):
        if number in free or data[(number - 1) * size + (100 if number == 1 else 0)] != _LEAF:
            continue
        page = bytes(data[(number - 1) * size : number * size])
        yield from _cells(image, page, number, -1, width, skip)
    for rank, (number, page) in enumerate(image.frames):
        if number and number not in free:
            yield from _cells(image, page, number, rank, width, skip)
