"""The bill tables of the outbox file, and the bill log the platform sinks write.

Bills (``bills``, ``bill_expected``, ``removals``, ``products``, ``packs``,
``pack_children``, ``bill_log``; outbox migration 2) live in the outbox file,
beside the scans they hold back, so that opening a bill, a group commit and a
lease are strictly ordered.  Every statement on them is here: the bill desk's
rules (``scanner_agent.bills``: who may open, close or take a scan off a
bill, and what a bill's progress is), the 码上放心 upload ledger
(``scanner_agent.sinks.alihealth``) and the EPCIS sink ask a
:class:`BillStore` and decide.

A :class:`BillStore` lives for one transaction, opened by
:meth:`Outbox.bills() <scanner_agent.outbox.Outbox.bills>`: a rule that reads,
decides and writes (no other bill open on the device, then the insert) does
so atomically.  Its times come from the outbox's clock, one reading per
transaction.  On an outbox opened read-only the reads work and a write fails
with :class:`~scanner_agent.kernel.OutboxError`.

What comes back is plain rows (named tuples in ``_models.py``, dicts): the
bills package turns them into its models.
"""

# SQL here is assembled only from constant fragments; values are always bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import dataclasses
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from scanner_agent.outbox._models import (
    BillCounts,
    BillRow,
    BillScanRow,
    FirstScan,
    ProductGroup,
    Removal,
)
from scanner_agent.outbox._rejects import REJECT_LAST_AT
from scanner_agent.outbox._states import RowState, row_state_sql

__all__ = ["BillStore"]

_BILL_COLUMNS = (
    "number, type, action, device_id, from_party, to_party, note, state, opened_at, closed_at"
)
_REMOVAL_COLUMNS = "seq, event_id, bill, code, reason, origin, removed_at"
_ROW_STATE = row_state_sql("s")
"""A scan's row state (``held``, ``removed``...), the outbox's one definition."""
# Units a scan stands for: its children, else its own ratio, else its product's ratio.
_UNITS_SQL = """
    NULLIF((SELECT COUNT(*) FROM pack_children c WHERE c.parent = s.code), 0),
    pc.units, pp.units
"""
_PACK_JOIN = """
    LEFT JOIN packs pc ON pc.key = s.code
    LEFT JOIN packs pp ON pp.key = s.product
"""
_UNIT_PRODUCT_SQL = (
    "COALESCE(NULLIF(pc.unit_product, ''), NULLIF(pp.unit_product, ''), s.product, s.code)"
)
_CHUNK = 500
"""Bound parameters per ``IN (...)`` list (SQLite allows far more; this keeps them short)."""


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class BillStore:
    """The bill tables in one transaction of an open outbox (see the module)."""

    def __init__(self, db: sqlite3.Connection, now: str) -> None:
        self._db = db
        self.now = now
        """The time of this transaction (UTC, ISO 8601, milliseconds), from the outbox's clock."""

    # -- bills -----------------------------------------------------------------

    def bill(self, number: str) -> BillRow | None:
        """The opened bill ``number``, or ``None``."""
        row = self._db.execute(
            f"SELECT {_BILL_COLUMNS} FROM bills WHERE number = ?", (number,)
        ).fetchone()
        return _bill_row(row) if row is not None else None

    def bills(self, *, device_id: str | None = None, only_open: bool = False) -> list[BillRow]:
        """Opened bills: the open ones oldest first (of one device, or all), else all newest first."""
        if not only_open:
            sql = f"SELECT {_BILL_COLUMNS} FROM bills ORDER BY opened_at DESC, rowid DESC"
            return [_bill_row(r) for r in self._db.execute(sql)]
        sql = f"SELECT {_BILL_COLUMNS} FROM bills WHERE state = 'open'"
        params: tuple[str, ...] = ()
        if device_id is not None:
            sql += " AND device_id = ?"
            params = (device_id,)
        return [_bill_row(r) for r in self._db.execute(sql + " ORDER BY opened_at", params)]

    def first_scan(self, number: str) -> FirstScan | None:
        """The first scan under ``number`` (a default bill exists as soon as it has one)."""
        row = self._db.execute(
            "SELECT action, device_id, MIN(scanned_at) FROM scans WHERE bill = ?", (number,)
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return FirstScan(str(row[0]), str(row[1]), str(row[2]))

    def stored_state(self, number: str) -> str | None:
        """``open`` or ``closed`` for an opened bill; ``None`` for any other number."""
        row = self._db.execute("SELECT state FROM bills WHERE number = ?", (number,)).fetchone()
        return str(row[0]) if row is not None else None

    def has_scans(self, number: str) -> bool:
        """Whether any scan (removed ones too) was taken under ``number``."""
        return bool(
            self._db.execute("SELECT 1 FROM scans WHERE bill = ? LIMIT 1", (number,)).fetchone()
        )

    def open_bill_for(self, device_id: str, action: str) -> str | None:
        """The number of the bill open for ``action`` on ``device_id``, if any."""
        row = self._db.execute(
            "SELECT number FROM bills WHERE state = 'open' AND device_id = ? AND action = ?",
            (device_id, action),
        ).fetchone()
        return str(row[0]) if row is not None else None

    def closed_bills(self, numbers: Iterable[str]) -> set[str]:
        """Which of ``numbers`` are opened bills now closed."""
        wanted = sorted(set(numbers))
        closed: set[str] = set()
        for start in range(0, len(wanted), _CHUNK):
            part = wanted[start : start + _CHUNK]
            closed.update(
                str(n)
                for (n,) in self._db.execute(
                    f"SELECT number FROM bills WHERE state = 'closed' AND number IN ({_marks(len(part))})",
                    part,
                )
            )
        return closed

    def insert_bill(self, bill: BillRow) -> None:
        """Record a newly opened bill (its ``state`` must be ``open``)."""
        self._db.execute(
            "INSERT INTO bills (number, type, action, device_id, from_party, to_party, note, "
            "state, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            bill[:9],
        )

    def close_bill(self, number: str) -> None:
        """Mark the bill closed, now."""
        self._db.execute(
            "UPDATE bills SET state = 'closed', closed_at = ? WHERE number = ?", (self.now, number)
        )

    # -- a bill's scans --------------------------------------------------------

    def counts(self, number: str) -> BillCounts:
        """Counts over the scans of ``number`` by row state, and the cartons and units."""
        states: dict[str, int] = {s.value: 0 for s in RowState}
        duplicate = 0
        for state, result, n in self._db.execute(
            f"SELECT {_ROW_STATE}, s.result, COUNT(*) FROM scans s WHERE s.bill = ? GROUP BY 1, 2",
            (number,),
        ):
            states[str(state)] = states.get(str(state), 0) + int(n)
            if state == RowState.DELIVERED and result == "duplicate":
                duplicate += int(n)
        cartons, units = self._db.execute(
            f"SELECT COUNT(NULLIF(COALESCE({_UNITS_SQL}), 1)), TOTAL(COALESCE({_UNITS_SQL}, 1)) "
            f"FROM scans s {_PACK_JOIN} WHERE s.bill = ? AND s.removed = 0",
            (number,),
        ).fetchone()
        return BillCounts(states, duplicate, int(cartons), int(units))

    def product_groups(self, number: str) -> list[ProductGroup]:
        """The bill's scans (not removed) grouped by scanned product and unit product."""
        return [
            ProductGroup(p, str(up), int(n), int(c), int(u))
            for p, up, n, c, u in self._db.execute(
                f"SELECT s.product, {_UNIT_PRODUCT_SQL}, COUNT(*), "
                f"COUNT(NULLIF(COALESCE({_UNITS_SQL}), 1)), TOTAL(COALESCE({_UNITS_SQL}, 1)) "
                f"FROM scans s {_PACK_JOIN} WHERE s.bill = ? AND s.removed = 0 "
                "GROUP BY 1, 2",
                (number,),
            )
        ]

    def latest_scans(self, number: str, limit: int) -> list[BillScanRow]:
        """The bill's latest scans, newest first, removed ones included."""
        return [
            BillScanRow(
                int(seq),
                str(code),
                str(product),
                str(unit_product),
                int(units) if units is not None else None,
                str(at),
                str(state),
                result,
                reason,
                bool(removed),
            )
            for seq, code, product, unit_product, units, at, state, result, reason, removed in (
                self._db.execute(
                    f"SELECT s.seq, s.code, COALESCE(s.product, ''), {_UNIT_PRODUCT_SQL}, "
                    f"COALESCE({_UNITS_SQL}), s.scanned_at, {_ROW_STATE}, s.result, s.reason, "
                    f"s.removed FROM scans s {_PACK_JOIN} WHERE s.bill = ? "
                    "ORDER BY s.seq DESC LIMIT ?",
                    (number, limit),
                )
            )
        ]

    def codes(self, number: str) -> list[tuple[int, str]]:
        """``(seq, code)`` of the bill's scans not taken off it, in no set order."""
        return [
            (int(s), str(c))
            for s, c in self._db.execute(
                "SELECT seq, code FROM scans WHERE bill = ? AND removed = 0", (number,)
            )
        ]

    def last_scan(self, number: str) -> int | None:
        """The seq of the bill's last scan not taken off it."""
        row = self._db.execute(
            "SELECT seq FROM scans WHERE bill = ? AND removed = 0 ORDER BY seq DESC LIMIT 1",
            (number,),
        ).fetchone()
        return int(row[0]) if row is not None else None

    def scan_on_bill(
        self, number: str, *, seq: int | None = None, code: str | None = None
    ) -> int | None:
        """The seq of the scan on the bill (not taken off) with ``seq``, or the last of ``code``."""
        if seq is not None:
            row = self._db.execute(
                "SELECT seq FROM scans WHERE bill = ? AND seq = ? AND removed = 0", (number, seq)
            ).fetchone()
        else:
            row = self._db.execute(
                "SELECT seq FROM scans WHERE bill = ? AND code = ? AND removed = 0 "
                "ORDER BY seq DESC LIMIT 1",
                (number, code),
            ).fetchone()
        return int(row[0]) if row is not None else None

    def scan_state(self, seq: int) -> tuple[str, str, str]:
        """``(event_id, code, row state)`` of the scan ``seq`` (it must exist)."""
        event_id, code, state = self._db.execute(
            f"SELECT s.event_id, s.code, {_ROW_STATE} FROM scans s WHERE s.seq = ?", (seq,)
        ).fetchone()
        return str(event_id), str(code), str(state)

    def remove_scan(self, removal: Removal) -> None:
        """Take a scan off its bill: flagged (never deleted) and out of the duplicate check."""
        self._db.execute(
            "UPDATE scans SET removed = 1, dup_guard = NULL WHERE seq = ?", (removal.seq,)
        )
        self._db.execute(
            f"INSERT INTO removals ({_REMOVAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            dataclasses.astuple(removal),
        )

    def removals(self, *, bill: str | None = None, code: str | None = None) -> list[Removal]:
        """Scans taken off a bill (of ``bill``, or of ``code``), oldest first."""
        column, value = ("bill", bill) if bill is not None else ("code", code)
        return [
            Removal(int(r[0]), *map(str, r[1:]))
            for r in self._db.execute(
                f"SELECT {_REMOVAL_COLUMNS} FROM removals WHERE {column} = ? ORDER BY id", (value,)
            )
        ]

    # -- what a bill expects, and the catalogue --------------------------------

    def expected(self, number: str) -> dict[str, tuple[int, str]]:
        """The bill's expected list: product -> (count, name)."""
        return {
            str(p): (int(n), str(name))
            for p, n, name in self._db.execute(
                "SELECT product, count, name FROM bill_expected WHERE bill = ?", (number,)
            )
        }

    def replace_expected(self, number: str, lines: Sequence[tuple[str, str, int]]) -> None:
        """Replace the bill's expected list with ``(product, name, count)`` lines."""
        self._db.execute("DELETE FROM bill_expected WHERE bill = ?", (number,))
        self._db.executemany(
            "INSERT INTO bill_expected (bill, product, name, count) VALUES (?, ?, ?, ?)",
            [(number, p, name, n) for p, name, n in lines],
        )

    def product_names(self, products: Iterable[str] | None = None) -> dict[str, str]:
        """Names from the catalogue: of ``products`` (empty ones skipped), or all of it."""
        if products is None:
            return {
                str(p): str(n) for p, n in self._db.execute("SELECT product, name FROM products")
            }
        wanted = sorted({p for p in products if p})
        out: dict[str, str] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            out.update(
                (str(p), str(n))
                for p, n in self._db.execute(
                    f"SELECT product, name FROM products WHERE product IN ({_marks(len(chunk))})",
                    chunk,
                )
            )
        return out

    def upsert_names(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Add or rename catalogue entries (``(product, name)``; empty ones skipped)."""
        self._db.executemany(
            "INSERT INTO products (product, name) VALUES (?, ?) "
            "ON CONFLICT (product) DO UPDATE SET name = excluded.name",
            [(p, n) for p, n in pairs if p and n],
        )

    def pack_ratios(self) -> dict[str, tuple[int, str]]:
        """Pack ratios: key (code or product) -> (units, unit product)."""
        return {
            str(k): (int(u), str(p))
            for k, u, p in self._db.execute("SELECT key, units, unit_product FROM packs")
        }

    def children_counts(self) -> dict[str, int]:
        """Parent code -> how many children the pack data lists for it."""
        return {
            str(p): int(n)
            for p, n in self._db.execute(
                "SELECT parent, COUNT(*) FROM pack_children GROUP BY parent"
            )
        }

    def children_of(self, parents: Iterable[str]) -> dict[str, list[str]]:
        """The children the pack data lists for each of ``parents`` that has some, sorted."""
        wanted = sorted(set(parents))
        out: dict[str, list[str]] = defaultdict(list)
        for start in range(0, len(wanted), _CHUNK):
            part = wanted[start : start + _CHUNK]
            for parent, child in self._db.execute(
                f"SELECT parent, child FROM pack_children WHERE parent IN ({_marks(len(part))}) "
                "ORDER BY parent, child",
                part,
            ):
                out[str(parent)].append(str(child))
        return dict(out)

    def upsert_packs(
        self, ratios: Iterable[tuple[str, int, str, str]], children: Iterable[tuple[str, str]]
    ) -> None:
        """Add or replace pack ratios (key, units, unit product, name) and add relations."""
        self._db.executemany(
            "INSERT INTO packs (key, units, unit_product, name) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET units = excluded.units, "
            "unit_product = excluded.unit_product, name = excluded.name",
            list(ratios),
        )
        self._db.executemany(
            "INSERT OR IGNORE INTO pack_children (parent, child) VALUES (?, ?)", list(children)
        )

    # -- a code's history ------------------------------------------------------

    def code_scans(self, code: str, limit: int) -> list[dict[str, Any]]:
        """The outbox rows of ``code``, oldest first, as column -> value."""
        cur = self._db.execute(
            "SELECT s.seq, s.event_id, s.code, s.scheme, s.product, s.action, s.bill, "
            f"s.device_id, s.source, s.scanned_at, {_ROW_STATE} AS state, s.batch_id, "
            "s.result, s.reason, s.attempts, s.settled_at, s.removed "
            "FROM scans s WHERE s.code = ? ORDER BY s.seq LIMIT ?",
            (code, limit),
        )
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def code_refusals(self, code: str, limit: int) -> list[dict[str, Any]]:
        """The refusal aggregates of ``code`` (the latest ``limit``), oldest first."""
        cur = self._db.execute(
            "SELECT code, reason, verdict, device_id, source, scanned_at, count, "
            f"{REJECT_LAST_AT} AS last_at FROM rejects WHERE code = ? ORDER BY id DESC LIMIT ?",
            (code, limit),
        )
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in reversed(cur.fetchall())]

    # -- the bill log ----------------------------------------------------------

    def log(self, entries: Iterable[tuple[str, str, str]]) -> None:
        """Add ``(bill, event, detail)`` entries to ``bill_log``, at this transaction's time."""
        self._db.executemany(
            "INSERT INTO bill_log (bill, at, event, detail) VALUES (?, ?, ?, ?)",
            [(bill, self.now, event, detail) for bill, event, detail in entries],
        )

    def log_entries(
        self, *, bill: str | None = None, events: Sequence[str] = ()
    ) -> list[tuple[str, str, str, str]]:
        """``(bill, at, event, detail)`` entries of ``bill`` (or all) of ``events`` (or any), oldest first."""
        where, params = [], []
        if bill is not None:
            where.append("bill = ?")
            params.append(bill)
        if events:
            where.append(f"event IN ({_marks(len(events))})")
            params.extend(events)
        sql = "SELECT bill, at, event, detail FROM bill_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [
            (str(b), str(a), str(e), str(d))
            for b, a, e, d in self._db.execute(sql + " ORDER BY id", params)
        ]

    def log_detail(self, bill: str, event: str, *, last: bool = False) -> str | None:
        """The detail of the bill's first (or ``last``) ``event`` entry, if any."""
        order = "DESC" if last else ""
        row = self._db.execute(
            f"SELECT detail FROM bill_log WHERE bill = ? AND event = ? ORDER BY id {order} LIMIT 1",
            (bill, event),
        ).fetchone()
        return str(row[0]) if row is not None else None


def _bill_row(row: Sequence[Any]) -> BillRow:
    number, kind, action, device_id, from_party, to_party, note, state, opened, closed = row
    return BillRow(
        str(number),
        int(kind),
        str(action),
        str(device_id),
        str(from_party),
        str(to_party),
        str(note),
        str(state),
        str(opened),
        str(closed) if closed is not None else None,
    )
