"""Refused scans on disk: aggregated, capped and pruned, so refusals can never fill the disk.

Issue 16: one client sending 16 MiB of one-byte lines left 7.5 million rows
(1.2 GB) in ``rejects``, one per refused line.  Now a refusal adds to a row
per *aggregate*: the hour it was seen in, its source and device, its verdict,
the kind of its reason (:func:`reason_kind`) and, for duplicate scans only, the
code (a duplicate is of a code already queued, so those rows are bounded by
the scans themselves, and a code's lookup still shows its duplicate scans).
The row keeps the count, the first and last time and the first refusal as its
sample.  So a flood costs one row per hour per connection, however many lines
it sends; the table also has a row cap (oldest rows go first, enforced on
every write) and a retention (pruned by the daemon's housekeeping).  A group
is pre-aggregated in Python, so a read of 32,768 refused frames is a handful of
upserts, not 32,768 inserts.
"""

# ruff: noqa: S608 (SQL text is built from module constants only, never from input)

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from scanner_agent.outbox._models import RejectRecord

__all__ = [
    "DEFAULT_REJECTS_MAX_ROWS",
    "REJECT_LAST_AT",
    "cap_rejects",
    "prune_rejects",
    "reason_kind",
    "reason_label",
    "recode_reject",
    "record_rejects",
]

DEFAULT_REJECTS_MAX_ROWS = 100_000
"""The ``rejects`` row cap when none is configured (``outbox.rejects_max_rows``)."""
REJECT_LAST_AT = "COALESCE(last_at, scanned_at)"
"""SQL for an aggregate's last refusal time (rows written before aggregation have none)."""

_DIGITS = re.compile(r"\d+")
_KIND_MAX = 80


_GOT = re.compile(r",\s*got\b.*$")


def reason_label(reason: str) -> str:
    """The label of a refusal reason: the same words wherever refusals are counted.

    The reason without what is particular to one scan: the text before any
    ``:``, `` (`` or `` for '…'``, and without a trailing ``, got N``.  So
    ``not a trace code: 7-digit number`` and ``not a trace code: 1-character
    text`` are both ``not a trace code``, and ``drug trace code must be 20
    digits, got 7`` is ``drug trace code must be 20 digits``.  ``status``,
    ``queue stats``, the metrics' ``reason`` label, the demo summary and the
    TUI all count refusals under it.

    >>> reason_label("invalid GTIN check digit for '06900695828659': Expected 8, got 9")
    'invalid GTIN check digit'
    """
    head = reason.split(":", 1)[0].split(" for '", 1)[0].split(" (", 1)[0]
    return _GOT.sub("", head).strip()[:_KIND_MAX] or reason.strip()[:_KIND_MAX]


def reason_kind(reason: str) -> str:
    """The aggregate key of a refusal: its :func:`reason_label`, numbers as ``N``.

    Numbers go so that no input, however chosen, can make a new aggregate per
    refusal; the full reason of the first refusal is kept as the aggregate's
    sample.
    """
    return _DIGITS.sub("N", reason_label(reason))


def _key(r: RejectRecord) -> str:
    """The aggregate a refusal belongs to (see the module docstring)."""
    code = r.code if r.verdict == "duplicate" else ""
    # \x1f never appears in a source or device name, a kind or an accepted code.
    return "\x1f".join(
        (r.scanned_at[:13], r.source, r.device_id, r.verdict, reason_kind(r.reason), code)
    )


_UPSERT = (
    "INSERT INTO rejects (raw, code, reason, verdict, device_id, source, scanned_at, count, "
    "last_at, agg_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (agg_key) DO UPDATE SET count = count + excluded.count, last_at = excluded.last_at"
)


def record_rejects(db: sqlite3.Connection, refused: Sequence[RejectRecord], max_rows: int) -> None:
    """Add ``refused`` to their aggregates (in the caller's transaction), then apply the cap."""
    if not refused:
        return
    groups: dict[str, list[object]] = {}
    for r in refused:
        key = _key(r)
        row = groups.get(key)
        if row is None:
            groups[key] = [
                r.raw,
                r.code,
                r.reason,
                r.verdict,
                r.device_id,
                r.source,
                r.scanned_at,
                1,
                r.scanned_at,
                key,
            ]
        else:
            row[7] = int(row[7]) + 1  # type: ignore[call-overload]
            row[8] = r.scanned_at
    db.executemany(_UPSERT, list(groups.values()))
    cap_rejects(db, max_rows)


def recode_reject(db: sqlite3.Connection, row_id: int, code: str) -> bool:
    """Give aggregate ``row_id`` the code ``code`` (in the caller's transaction); False if gone.

    For a code whose stored form changed (:mod:`scanner_agent.outbox._recode`): the row's
    key follows (a duplicate's includes its code; a row from before aggregation has none
    and keeps none). When the new key is another aggregate's, the two are one aggregate
    by the rules above: counts add, the first and last times are the earliest and latest,
    the earlier first refusal stays the sample, and this row goes.
    """
    row = db.execute(
        "SELECT raw, reason, verdict, device_id, source, scanned_at, count, "
        f"{REJECT_LAST_AT}, agg_key FROM rejects WHERE id = ?",
        (row_id,),
    ).fetchone()
    if row is None:
        return False
    raw, reason, verdict, device_id, source, scanned_at, count, last_at, old_key = row
    key = None
    if old_key is not None:
        key = _key(RejectRecord(raw, code, reason, verdict, device_id, source, scanned_at))
    if key is not None and key != old_key:
        other = db.execute(
            "SELECT id, scanned_at FROM rejects WHERE agg_key = ?", (key,)
        ).fetchone()
        if other is not None:
            sample = (raw, reason, scanned_at) if scanned_at < other[1] else (None, None, None)
            db.execute(
                "UPDATE rejects SET count = count + ?, "
                f"last_at = max({REJECT_LAST_AT}, ?), raw = COALESCE(?, raw), "
                "reason = COALESCE(?, reason), scanned_at = COALESCE(?, scanned_at) WHERE id = ?",
                (count, last_at, *sample, other[0]),
            )
            db.execute("DELETE FROM rejects WHERE id = ?", (row_id,))
            return True
    db.execute("UPDATE rejects SET code = ?, agg_key = ? WHERE id = ?", (code, key, row_id))
    return True


def cap_rejects(db: sqlite3.Connection, max_rows: int) -> int:
    """Delete the oldest rows beyond ``max_rows``; how many went.

    Rows are numbered in the order they were created (AUTOINCREMENT), so the
    excess is a range of the primary key at the low end: found and deleted in
    time proportional to the excess, cheap enough to run on every write.  The
    range is over ids, so an aggregate's gaps make the kept count at most the
    cap, never more.
    """
    if max_rows <= 0:
        return 0
    cur = db.execute(
        "DELETE FROM rejects WHERE id <= (SELECT MAX(id) FROM rejects) - ?", (max_rows,)
    )
    return int(cur.rowcount)


def prune_rejects(db: sqlite3.Connection, older_than: datetime, limit: int) -> int:
    """Delete up to ``limit`` aggregates last seen before ``older_than``; how many went."""
    cur = db.execute(
        "DELETE FROM rejects WHERE id IN (SELECT id FROM rejects "
        f"WHERE {REJECT_LAST_AT} < ? ORDER BY id LIMIT ?)",
        (older_than.isoformat(timespec="milliseconds"), limit),
    )
    return int(cur.rowcount)
