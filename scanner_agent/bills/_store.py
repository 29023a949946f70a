"""Bills in the outbox file: open, close, take scans off, import, show.

:class:`BillBook` is synchronous like :class:`~scanner_agent.outbox.Outbox`
and runs on the outbox thread; every call is one transaction through
``Outbox.atomic()``, so a bill command and the group commits are strictly
ordered.  The tables come from outbox migration 2 (``outbox/_schema.py``).

Policy (see ``docs/control.md``):

* Scans of an **open** bill are held back from sync (the outbox never leases
  them) and go to the service when the bill is closed, the way the platform
  takes a bill as one upload.  A device's default bills are never opened and
  sync continuously.
* Taking a scan off a bill never deletes it: the row is flagged ``removed``,
  its duplicate key is cleared so the code can be scanned again, and a
  ``removals`` row keeps the reason.  Only a scan not yet sent can be taken
  off, so a removed scan is never sent and no removal has to be sent.
"""

# SQL here is assembled only from constant fragments; values are always bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import json
import logging
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from scanner_agent.bills._errors import BillError
from scanner_agent.bills._files import ExpectedLine, PackTable
from scanner_agent.bills._models import (
    Bill,
    BillScan,
    BillState,
    BillTotals,
    BillView,
    CodeHistory,
    ProgressLine,
    Removal,
)
from scanner_agent.bills._types import bill_type, bill_types
from scanner_agent.config import alihealth_params
from scanner_agent.errors import ConfigError
from scanner_agent.outbox import REJECT_LAST_AT, Outbox, RowState, bill_state, row_state_sql

log = logging.getLogger(__name__)

MAX_NUMBER = 64
"""Longest bill number accepted."""

PARAMS_EVENT = "platform-params"
"""``bill_log.event`` of a bill's own optional platform parameters (JSON object in ``detail``)."""

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


def _row_counts(totals: BillTotals) -> dict[str, int]:
    """A bill's rows per :class:`~scanner_agent.outbox.RowState`, from its totals."""
    return {s.value: int(getattr(totals, s.value)) for s in RowState}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class BillBook:
    """Bill commands and views over an open :class:`Outbox` (call from its thread)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    # -- reads ---------------------------------------------------------------

    def _one(self, db: sqlite3.Connection, number: str) -> Bill | None:
        row = db.execute(
            f"SELECT {_BILL_COLUMNS} FROM bills WHERE number = ?", (number,)
        ).fetchone()
        if row is not None:
            return self._bill(db, row)
        # A default bill exists as soon as it has a scan.
        first = db.execute(
            "SELECT action, device_id, MIN(scanned_at) FROM scans WHERE bill = ?", (number,)
        ).fetchone()
        if first is None or first[0] is None:
            return None
        totals = self._totals(db, number)
        return Bill(
            number=number,
            type=None,
            type_zh="默认单据",
            type_en="Default bill",
            action=str(first[0]),
            device_id=str(first[1]),
            from_party="",
            to_party="",
            note="",
            state=bill_state(None, _row_counts(totals)).value,
            opened_at=str(first[2]),
            closed_at=None,
            totals=totals,
        )

    def _bill(self, db: sqlite3.Connection, row: Sequence[Any]) -> Bill:
        number, code, action, device_id, from_party, to_party, note, stored, opened, closed = row
        totals = self._totals(db, str(number))
        known = bill_types().get(int(code))
        return Bill(
            number=str(number),
            type=int(code),
            type_zh=known.zh if known else "",
            type_en=known.en if known else "",
            action=str(action),
            device_id=str(device_id),
            from_party=str(from_party),
            to_party=str(to_party),
            note=str(note),
            state=bill_state(str(stored), _row_counts(totals)).value,
            opened_at=str(opened),
            closed_at=str(closed) if closed is not None else None,
            totals=totals,
        )

    def _totals(self, db: sqlite3.Connection, number: str) -> BillTotals:
        counts: dict[str, int] = defaultdict(int)
        for state, result, n in db.execute(
            f"SELECT {_ROW_STATE}, s.result, COUNT(*) FROM scans s WHERE s.bill = ? GROUP BY 1, 2",
            (number,),
        ):
            counts[str(state)] += n
            if state == RowState.DELIVERED and result == "duplicate":
                counts["duplicate"] += n
        cartons, units = db.execute(
            f"SELECT COUNT(NULLIF(COALESCE({_UNITS_SQL}), 1)), TOTAL(COALESCE({_UNITS_SQL}, 1)) "
            f"FROM scans s {_PACK_JOIN} WHERE s.bill = ? AND s.removed = 0",
            (number,),
        ).fetchone()
        return BillTotals(
            scans=sum(counts[s] for s in RowState if s is not RowState.REMOVED),
            cartons=int(cartons),
            units=int(units),
            removed=counts[RowState.REMOVED],
            pending=counts[RowState.PENDING],
            held=counts[RowState.HELD],
            in_flight=counts[RowState.IN_FLIGHT],
            delivered=counts[RowState.DELIVERED],
            duplicate=counts["duplicate"],
            rejected=counts[RowState.REJECTED],
            quarantined=counts[RowState.QUARANTINED],
        )

    def get(self, number: str) -> Bill:
        """One bill (an opened one, or a default bill that has scans).

        Raises:
            BillError: no such bill (``not_found``).
        """
        with self.outbox.atomic() as db:
            bill = self._one(db, number)
        if bill is None:
            raise BillError(f"Failed to find bill {number!r}", code="not_found")
        return bill

    def open_bills(self, device_id: str | None = None) -> list[Bill]:
        """Bills now open (on one device, or all), oldest first."""
        sql = f"SELECT {_BILL_COLUMNS} FROM bills WHERE state = 'open'"
        params: tuple[str, ...] = ()
        if device_id is not None:
            sql += " AND device_id = ?"
            params = (device_id,)
        with self.outbox.atomic() as db:
            rows = db.execute(sql + " ORDER BY opened_at", params).fetchall()
            return [self._bill(db, r) for r in rows]

    def list_bills(self, *, state: str | None = None, limit: int = 50) -> list[Bill]:
        """Opened bills, newest first; ``state`` filters on the derived state."""
        with self.outbox.atomic() as db:
            rows = db.execute(
                f"SELECT {_BILL_COLUMNS} FROM bills ORDER BY opened_at DESC, rowid DESC"
            ).fetchall()
            out: list[Bill] = []
            for r in rows:
                bill = self._bill(db, r)
                if state is None or bill.state == state:
                    out.append(bill)
                if len(out) >= limit:
                    break
            return out

    def view(self, number: str, *, scan_limit: int = 100) -> BillView:
        """The bill with its progress against the expected list and its latest scans.

        Raises:
            BillError: no such bill.
        """
        with self.outbox.atomic() as db:
            bill = self._one(db, number)
            if bill is None:
                raise BillError(f"Failed to find bill {number!r}", code="not_found")
            expected = {
                str(p): (int(n), str(name))
                for p, n, name in db.execute(
                    "SELECT product, count, name FROM bill_expected WHERE bill = ?", (number,)
                )
            }
            groups = db.execute(
                f"SELECT s.product, {_UNIT_PRODUCT_SQL}, COUNT(*), "
                f"COUNT(NULLIF(COALESCE({_UNITS_SQL}), 1)), TOTAL(COALESCE({_UNITS_SQL}, 1)) "
                f"FROM scans s {_PACK_JOIN} WHERE s.bill = ? AND s.removed = 0 "
                "GROUP BY 1, 2",
                (number,),
            ).fetchall()
            names = self._names(db, [*expected, *(str(g[1]) for g in groups)])
            scans = db.execute(
                f"SELECT s.seq, s.code, COALESCE(s.product, ''), {_UNIT_PRODUCT_SQL}, "
                f"COALESCE({_UNITS_SQL}), s.scanned_at, {_ROW_STATE}, s.result, s.reason, s.removed "
                f"FROM scans s {_PACK_JOIN} WHERE s.bill = ? ORDER BY s.seq DESC LIMIT ?",
                (number, scan_limit),
            ).fetchall()
            names.update(self._names(db, [str(r[3]) for r in scans]))
            removals = db.execute(
                f"SELECT {_REMOVAL_COLUMNS} FROM removals WHERE bill = ? ORDER BY id", (number,)
            ).fetchall()
        for product, (_n, name) in expected.items():
            if name:
                names.setdefault(product, name)
        return BillView(
            bill=bill,
            lines=tuple(_progress(expected, groups, names)),
            scans=tuple(
                BillScan(
                    seq=int(seq),
                    code=str(code),
                    product=str(unit_product),
                    name=names.get(str(unit_product), ""),
                    units=int(units) if units is not None else 1,
                    carton=units is not None and int(units) > 1,
                    scanned_at=str(at),
                    state=str(state),
                    result=result,
                    reason=reason,
                    removed=bool(removed),
                )
                for seq, code, _p, unit_product, units, at, state, result, reason, removed in scans
            ),
            removals=tuple(Removal(*r) for r in removals),
            has_expected=bool(expected),
        )

    def _names(self, db: sqlite3.Connection, products: Iterable[str]) -> dict[str, str]:
        wanted = sorted({p for p in products if p})
        out: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            out.update(
                (str(p), str(n))
                for p, n in db.execute(
                    f"SELECT product, name FROM products WHERE product IN ({marks})", chunk
                )
            )
        return out

    def product_names(self) -> dict[str, str]:
        """The whole product catalogue (code or GTIN -> name)."""
        with self.outbox.atomic() as db:
            return {str(p): str(n) for p, n in db.execute("SELECT product, name FROM products")}

    def pack_units(self) -> tuple[dict[str, tuple[int, str]], dict[str, int]]:
        """Ratios (key -> units, unit product) and children counts per parent code."""
        with self.outbox.atomic() as db:
            ratios = {
                str(k): (int(u), str(p))
                for k, u, p in db.execute("SELECT key, units, unit_product FROM packs")
            }
            children = {
                str(p): int(n)
                for p, n in db.execute("SELECT parent, COUNT(*) FROM pack_children GROUP BY parent")
            }
        return ratios, children

    def lookup(self, code: str, *, limit: int = 200) -> CodeHistory:
        """A code's history: its scans on every bill, refusals, removals."""
        with self.outbox.atomic() as db:
            cur = db.execute(
                "SELECT s.seq, s.event_id, s.code, s.scheme, s.product, s.action, s.bill, "
                f"s.device_id, s.source, s.scanned_at, {_ROW_STATE} AS state, s.batch_id, "
                "s.result, s.reason, s.attempts, s.settled_at, s.removed "
                "FROM scans s WHERE s.code = ? ORDER BY s.seq LIMIT ?",
                (code, limit),
            )
            cols = [d[0] for d in cur.description]
            scans = tuple(dict(zip(cols, r, strict=True)) for r in cur.fetchall())
            cur = db.execute(
                "SELECT code, reason, verdict, device_id, source, scanned_at, count, "
                f"{REJECT_LAST_AT} AS last_at FROM rejects WHERE code = ? ORDER BY id DESC LIMIT ?",
                (code, limit),
            )
            cols = [d[0] for d in cur.description]
            refused = tuple(dict(zip(cols, r, strict=True)) for r in reversed(cur.fetchall()))
            removals = tuple(
                Removal(*r)
                for r in db.execute(
                    f"SELECT {_REMOVAL_COLUMNS} FROM removals WHERE code = ? ORDER BY id", (code,)
                )
            )
        return CodeHistory(code=code, scans=scans, refused=refused, removals=removals)

    # -- writes --------------------------------------------------------------

    def open(
        self,
        number: str,
        type_code: int | str,
        *,
        device_id: str,
        action: str | None = None,
        from_party: str = "",
        to_party: str = "",
        note: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> Bill:
        """Open a bill: from now on the device's scans for its action go to it.

        ``params`` are the bill's optional 码上放心 upload parameters by the
        platform's names (``warehouse_id``, ``return_reason_code`` ...; strings or
        numbers); they are kept in ``bill_log`` (event ``platform-params``) and
        override ``alihealth.extra`` for this bill.

        Raises:
            BillError: a bad number, type or parameter (``bad_request``), the
                number is taken or the device already has an open bill for the
                action (``conflict``).
        """
        number = number.strip()
        if not number or len(number) > MAX_NUMBER or not number.isprintable():
            raise BillError(
                f"Failed to open bill {number!r}: expected 1 to {MAX_NUMBER} printable characters"
            )
        checked = _checked_params(number, params) if params else {}
        kind = bill_type(type_code)
        action = action or kind.action
        with self.outbox.atomic() as db:
            if db.execute("SELECT 1 FROM bills WHERE number = ?", (number,)).fetchone():
                raise BillError(f"Failed to open bill {number!r}: it exists", code="conflict")
            if db.execute("SELECT 1 FROM scans WHERE bill = ? LIMIT 1", (number,)).fetchone():
                raise BillError(
                    f"Failed to open bill {number!r}: scans were already taken under that "
                    "number (a default or source bill)",
                    code="conflict",
                )
            other = db.execute(
                "SELECT number FROM bills WHERE state = 'open' AND device_id = ? AND action = ?",
                (device_id, action),
            ).fetchone()
            if other is not None:
                raise BillError(
                    f"Failed to open bill {number!r}: bill {other[0]!r} is open for {action} "
                    f"on {device_id}; close it first",
                    code="conflict",
                )
            now = _now()
            db.execute(
                "INSERT INTO bills (number, type, action, device_id, from_party, to_party, note, "
                "state, opened_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?)",
                (number, kind.code, action, device_id, from_party, to_party, note, now),
            )
            self._log(db, number, "open", f"type {kind.code} {kind.zh}, action {action}")
            if checked:
                self._log(
                    db,
                    number,
                    PARAMS_EVENT,
                    json.dumps(checked, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
                )
            bill = self._one(db, number)
        assert bill is not None
        log.info(
            "bill %s opened (%s %s) for %s on %s", number, kind.code, kind.en, action, device_id
        )
        return bill

    def close(self, number: str) -> Bill:
        """Close an open bill: its scans are handed to sync.

        Raises:
            BillError: no such bill, or it is not open (``conflict``).
        """
        with self.outbox.atomic() as db:
            state = self._explicit_state(db, number, "close")
            if state != BillState.OPEN.value:
                raise BillError(f"Failed to close bill {number!r}: it is {state}", code="conflict")
            db.execute(
                "UPDATE bills SET state = 'closed', closed_at = ? WHERE number = ?",
                (_now(), number),
            )
            bill = self._one(db, number)
            assert bill is not None
            self._log(db, number, "close", f"{bill.totals.scans} scans, {bill.totals.units} units")
        log.info("bill %s closed: %d scans handed to sync", number, bill.totals.scans)
        return bill

    def _explicit_state(self, db: sqlite3.Connection, number: str, doing: str) -> str:
        row = db.execute("SELECT state FROM bills WHERE number = ?", (number,)).fetchone()
        if row is None:
            raise BillError(f"Failed to {doing} bill {number!r}: no such bill", code="not_found")
        return str(row[0])

    def undo(self, number: str, *, reason: str, origin: str = "") -> Removal:
        """Take the bill's last scan off it.

        Raises:
            BillError: the bill is closed, has no scan left, or its last scan was sent.
        """
        with self.outbox.atomic() as db:
            self._check_editable(db, number, "undo a scan of")
            row = db.execute(
                "SELECT seq FROM scans WHERE bill = ? AND removed = 0 ORDER BY seq DESC LIMIT 1",
                (number,),
            ).fetchone()
            if row is None:
                raise BillError(f"Failed to undo a scan of bill {number!r}: it has no scans")
            return self._remove(db, number, int(row[0]), reason, origin)

    def remove(
        self,
        number: str,
        *,
        reason: str,
        seq: int | None = None,
        code: str | None = None,
        origin: str = "",
    ) -> Removal:
        """Take one scan (by sequence number or code) off the bill.

        Raises:
            BillError: the bill is closed, the scan is not on it, or was sent.
        """
        if (seq is None) == (code is None):
            raise BillError("Failed to remove a scan: give either its seq or its code")
        with self.outbox.atomic() as db:
            self._check_editable(db, number, "remove a scan from")
            if seq is not None:
                row = db.execute(
                    "SELECT seq FROM scans WHERE bill = ? AND seq = ? AND removed = 0",
                    (number, seq),
                ).fetchone()
            else:
                row = db.execute(
                    "SELECT seq FROM scans WHERE bill = ? AND code = ? AND removed = 0 "
                    "ORDER BY seq DESC LIMIT 1",
                    (number, code),
                ).fetchone()
            if row is None:
                what = f"scan {seq}" if seq is not None else f"code {code!r}"
                raise BillError(
                    f"Failed to remove {what} from bill {number!r}: not on it", code="not_found"
                )
            return self._remove(db, number, int(row[0]), reason, origin)

    def _check_editable(self, db: sqlite3.Connection, number: str, doing: str) -> None:
        row = db.execute("SELECT state FROM bills WHERE number = ?", (number,)).fetchone()
        if row is not None and row[0] != BillState.OPEN.value:
            raise BillError(
                f"Failed to {doing} bill {number!r}: it is closed (scan a return bill instead)",
                code="conflict",
            )
        if (
            row is None
            and not db.execute("SELECT 1 FROM scans WHERE bill = ? LIMIT 1", (number,)).fetchone()
        ):
            raise BillError(f"Failed to {doing} bill {number!r}: no such bill", code="not_found")

    def _remove(
        self, db: sqlite3.Connection, number: str, seq: int, reason: str, origin: str
    ) -> Removal:
        reason = " ".join(reason.split())
        if not reason:
            raise BillError("Failed to remove a scan: a reason is required")
        event_id, code, state = db.execute(
            f"SELECT s.event_id, s.code, {_ROW_STATE} FROM scans s WHERE s.seq = ?", (seq,)
        ).fetchone()
        if state not in (RowState.PENDING, RowState.HELD):
            raise BillError(
                f"Failed to remove scan {seq} ({code}) from bill {number!r}: it was already "
                f"sent ({state}); record the movement on a return bill instead",
                code="conflict",
            )
        now = _now()
        # Not deleted: flagged, out of the duplicate check (the code can be scanned again).
        db.execute("UPDATE scans SET removed = 1, dup_guard = NULL WHERE seq = ?", (seq,))
        db.execute(
            f"INSERT INTO removals ({_REMOVAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, event_id, number, code, reason, origin, now),
        )
        self._log(db, number, "remove", f"scan {seq} {code}: {reason}")
        log.info("bill %s: scan %d %s removed (%s) by %s", number, seq, code, reason, origin or "?")
        return Removal(seq, str(event_id), number, str(code), reason, origin, now)

    def import_expected(self, number: str, lines: Sequence[ExpectedLine]) -> int:
        """Replace the bill's expected list; names also go to the product catalogue.

        Raises:
            BillError: no such bill, or it is not open.
        """
        with self.outbox.atomic() as db:
            state = self._explicit_state(db, number, "import the expected list of")
            if state != BillState.OPEN.value:
                raise BillError(
                    f"Failed to import the expected list of bill {number!r}: it is {state}",
                    code="conflict",
                )
            db.execute("DELETE FROM bill_expected WHERE bill = ?", (number,))
            db.executemany(
                "INSERT INTO bill_expected (bill, product, name, count) VALUES (?, ?, ?, ?)",
                [(number, e.product, e.name, e.count) for e in lines],
            )
            self._upsert_names(db, ((e.product, e.name) for e in lines))
            total = sum(e.count for e in lines)
            self._log(db, number, "import", f"{len(lines)} products, {total} units expected")
        return len(lines)

    def import_packs(self, table: PackTable) -> tuple[int, int]:
        """Add (or replace) pack ratios and parent -> child relations.

        Returns:
            ``(ratios, relations)`` imported.
        """
        with self.outbox.atomic() as db:
            db.executemany(
                "INSERT INTO packs (key, units, unit_product, name) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET units = excluded.units, "
                "unit_product = excluded.unit_product, name = excluded.name",
                [(r.key, r.units, r.unit_product, r.name) for r in table.ratios],
            )
            db.executemany(
                "INSERT OR IGNORE INTO pack_children (parent, child) VALUES (?, ?)",
                table.children,
            )
            self._upsert_names(db, ((r.key, r.name) for r in table.ratios))
        return len(table.ratios), len(table.children)

    def _upsert_names(self, db: sqlite3.Connection, pairs: Iterable[tuple[str, str]]) -> None:
        db.executemany(
            "INSERT INTO products (product, name) VALUES (?, ?) "
            "ON CONFLICT (product) DO UPDATE SET name = excluded.name",
            [(p, n) for p, n in pairs if p and n],
        )

    def _log(self, db: sqlite3.Connection, number: str, event: str, detail: str) -> None:
        db.execute(
            "INSERT INTO bill_log (bill, at, event, detail) VALUES (?, ?, ?, ?)",
            (number, _now(), event, detail),
        )

    def platform_params(self, number: str) -> dict[str, str]:
        """The bill's own optional platform parameters (given at open); empty when none."""
        with self.outbox.atomic() as db:
            row = db.execute(
                "SELECT detail FROM bill_log WHERE bill = ? AND event = ? ORDER BY id DESC LIMIT 1",
                (number, PARAMS_EVENT),
            ).fetchone()
        if row is None:
            return {}
        try:
            data = json.loads(str(row[0]))
        except ValueError:
            log.warning("bill %s: unreadable %s entry ignored", number, PARAMS_EVENT)
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def history(self, number: str) -> list[dict[str, str]]:
        """The bill's log, oldest first: open, imports, removals with reasons, close, and what a
        platform sink recorded (``upload-plan``, ``upload``, ``platform-status``, ``platform-ack``)."""
        with self.outbox.atomic() as db:
            return [
                {"at": str(a), "event": str(e), "detail": str(d)}
                for a, e, d in db.execute(
                    "SELECT at, event, detail FROM bill_log WHERE bill = ? ORDER BY id", (number,)
                )
            ]


def _progress(
    expected: dict[str, tuple[int, str]],
    groups: Sequence[Sequence[Any]],
    names: dict[str, str],
) -> list[ProgressLine]:
    """Per-product progress; a carton counts towards the expected product it holds.

    Each group is ``(scanned product, unit product, scans, cartons, units)``.  The
    units count towards the unit product when it is expected; else, when the
    scanned product itself is expected (counted in cartons), the scans count.
    """
    scanned: dict[str, int] = defaultdict(int)
    cartons: dict[str, int] = defaultdict(int)
    for product, unit_product, n, n_cartons, units in groups:
        key_unit, key_own = str(unit_product), str(product or unit_product)
        if key_unit not in expected and key_own in expected:
            scanned[key_own] += int(n)
        else:
            scanned[key_unit] += int(units)
            cartons[key_unit] += int(n_cartons)
    lines = []
    for product in [*expected, *sorted(p for p in scanned if p not in expected)]:
        want = expected.get(product, (0, ""))[0]
        got = scanned.get(product, 0)
        lines.append(
            ProgressLine(
                product=product,
                name=names.get(product, ""),
                expected=want,
                scanned=got,
                cartons=cartons.get(product, 0),
                missing=max(want - got, 0),
                extra=max(got - want, 0),
            )
        )
    return lines


def parse_param_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``NAME=VALUE`` texts (``bill open --param``, the TUI's Params field) as a table.

    Only the form is checked here (split at the first ``=``; a name given once);
    :meth:`BillBook.open` checks the names and values, so every client gets the
    same error naming the parameter.

    Raises:
        BillError: a text without ``=`` or a name, or a name given twice.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise BillError(f"Failed to read parameter {pair!r}: expected NAME=VALUE")
        if name in out:
            raise BillError(f"Failed to read parameter {name!r}: given twice")
        out[name] = value.strip()
    return out


def _checked_params(number: str, params: Mapping[str, Any]) -> dict[str, str]:
    """A bill's optional platform parameters, checked like ``alihealth.extra``."""
    try:
        return alihealth_params(params, "params")
    except ConfigError as exc:
        raise BillError(f"Failed to open bill {number!r}: {exc}") from None
