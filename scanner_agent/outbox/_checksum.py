"""Row checksums: every scan row carries a CRC-32 of what was captured, checked when read.

Why: SQLite's own checks (``quick_check``) look at the file's structure, not at
what a row's bytes say, so one flipped byte in a stored code went unnoticed:
either the text stopped being UTF-8 (every lease failed forever) or it became
another code, delivered as if scanned (issue 16).  CRC-32 catches every error
burst of up to 32 bits and all but 2^-32 of the others, and ``zlib.crc32`` is C.

What is covered: every field of :class:`~scanner_agent.outbox.NewScan`, in its
order, as text, ``None`` as empty (the outbox stores an absent field as NULL
and an empty one never happens in the nullable columns: see
:mod:`scanner_agent.sqlrows`), each followed by ``\\x1f``.  The fields written
later (state, batch, result) are not: they change as the row moves on, and a
damaged state is found by its value (:data:`VALID_STATES`).

The write path computes a group's checksums without a Python-level step per
field (:func:`flat_params`): the group's values are joined into one text with a
marker ending each row, encoded once and split at the markers, and
``zlib.crc32`` is mapped over the pieces; the results go into each row's 16th
parameter slot by one slice assignment.  Should a value contain the marker
itself (no accepted scan does), the pieces would not line up with the rows, which
the count shows; that group is then checksummed row by row.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from itertools import chain, repeat
from operator import add

from scanner_agent.outbox._models import NewScan
from scanner_agent.outbox._states import STORED_STATES
from scanner_agent.sqlrows import NULL

__all__ = [
    "CHECKED_FIELDS",
    "VALID_STATES",
    "flat_params",
    "row_checksum",
    "text_checksum",
]

CHECKED_FIELDS: tuple[str, ...] = NewScan._fields
"""The columns a row's checksum covers, in order (the ``crc`` column holds it)."""
_WIDTH = len(CHECKED_FIELDS)
_SEP = "\x1f"
_MARK = "\x1e"
_SPLIT = (_MARK + _SEP).encode()
VALID_STATES = frozenset(s.value for s in STORED_STATES)
"""Every value ``scans.state`` may hold; any other is damage."""


def text_checksum(values: Sequence[str | None]) -> int:
    """The checksum of one row's :data:`CHECKED_FIELDS` values (``None`` as empty)."""
    return zlib.crc32((_SEP.join([NULL if v is None else v for v in values]) + _SEP).encode())


def row_checksum(scan: NewScan) -> int:
    """The checksum a row of ``scan`` carries."""
    return text_checksum(scan)


def flat_params(scans: Sequence[NewScan]) -> list[object]:
    """The scans' values, ``None`` as ``''``, each row followed by its checksum (width 16).

    Equal to ``[*scan, row_checksum(scan)]`` for each scan, flattened; see
    the module docstring for why it is computed this way.
    """
    n = len(scans)
    flat: list[object] = [
        NULL if v is None else v for v in chain.from_iterable(map(add, scans, repeat((_MARK,))))
    ]
    # Rows are "v1 SEP ... v15 SEP MARK", joined by SEP: each row's piece ends with SEP once
    # the "MARK SEP" after it is cut off (the last row's by the one added).
    pieces = (_SEP.join(flat) + _SEP).encode().split(_SPLIT)  # type: ignore[arg-type]
    if len(pieces) != n + 1:
        flat[_WIDTH :: _WIDTH + 1] = [row_checksum(s) for s in scans]
        return flat
    del pieces[n]
    flat[_WIDTH :: _WIDTH + 1] = list(map(zlib.crc32, pieces))
    return flat
