"""Bill commands and views: the rules of the bill desk over the outbox's bill tables.

:class:`BillBook` is synchronous like :class:`~scanner_agent.outbox.Outbox`
and runs on the outbox thread; every call is one transaction over the bill
tables (``Outbox.bills()``, whose SQL is the outbox's: ``outbox/_bill_store.py``),
so a bill command and the group commits are strictly ordered.  Here are the
rules: what a bill number may be, who may open, close or take a scan off a
bill, a bill's state, totals and progress against its expected list.

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

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from scanner_agent.bills._errors import BillError
from scanner_agent.bills._files import ExpectedLine, PackTable
from scanner_agent.bills._models import (
    Bill,
    BillScan,
    BillState,
    BillView,
    CodeHistory,
    Removal,
)
from scanner_agent.bills._params import checked_params
from scanner_agent.bills._tally import bill_progress, bill_totals
from scanner_agent.bills._types import bill_type, bill_types
from scanner_agent.codes import Scheme, parse_scan
from scanner_agent.kernel import plural
from scanner_agent.outbox import (
    BillRow,
    BillStore,
    Outbox,
    RowState,
    bill_state,
)

log = logging.getLogger(__name__)

MAX_NUMBER = 64
"""Longest bill number accepted."""

PARAMS_EVENT = "platform-params"
"""``bill_log.event`` of a bill's own optional platform parameters (JSON object in ``detail``)."""


class BillBook:
    """Bill commands and views over an open :class:`Outbox` (call from its thread)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    # -- reads ---------------------------------------------------------------

    def _one(self, store: BillStore, number: str) -> Bill | None:
        row = store.bill(number)
        if row is not None:
            return self._bill(store, row)
        # A default bill exists as soon as it has a scan.
        first = store.first_scan(number)
        if first is None:
            return None
        counts = store.counts(number)
        return Bill(
            number=number,
            type=None,
            type_zh="默认单据",
            type_en="Default bill",
            action=first.action,
            device_id=first.device_id,
            from_party="",
            to_party="",
            note="",
            state=bill_state(None, counts.states).value,
            opened_at=first.scanned_at,
            closed_at=None,
            totals=bill_totals(counts),
        )

    def _bill(self, store: BillStore, row: BillRow) -> Bill:
        counts = store.counts(row.number)
        known = bill_types().get(row.type)
        return Bill(
            number=row.number,
            type=row.type,
            type_zh=known.zh if known else "",
            type_en=known.en if known else "",
            action=row.action,
            device_id=row.device_id,
            from_party=row.from_party,
            to_party=row.to_party,
            note=row.note,
            state=bill_state(row.state, counts.states).value,
            opened_at=row.opened_at,
            closed_at=row.closed_at,
            totals=bill_totals(counts),
        )

    def get(self, number: str) -> Bill:
        """One bill (an opened one, or a default bill that has scans).

        Raises:
            BillError: no such bill (``not_found``).
        """
        with self.outbox.bills() as store:
            bill = self._one(store, number)
        if bill is None:
            raise BillError(f"Failed to find bill {number!r}", code="not_found")
        return bill

    def open_bills(self, device_id: str | None = None) -> list[Bill]:
        """Bills now open (on one device, or all), oldest first."""
        with self.outbox.bills() as store:
            return [self._bill(store, r) for r in store.bills(device_id=device_id, only_open=True)]

    def list_bills(self, *, state: str | None = None, limit: int = 50) -> list[Bill]:
        """Opened bills, newest first; ``state`` filters on the derived state."""
        with self.outbox.bills() as store:
            out: list[Bill] = []
            for r in store.bills():
                bill = self._bill(store, r)
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
        with self.outbox.bills() as store:
            bill = self._one(store, number)
            if bill is None:
                raise BillError(f"Failed to find bill {number!r}", code="not_found")
            expected = store.expected(number)
            groups = store.product_groups(number)
            names = store.product_names([*expected, *(g.unit_product for g in groups)])
            scans = store.latest_scans(number, scan_limit)
            names.update(store.product_names([r.unit_product for r in scans]))
            removals = store.removals(bill=number)
        for product, (_n, name) in expected.items():
            if name:
                names.setdefault(product, name)
        return BillView(
            bill=bill,
            lines=tuple(bill_progress(expected, groups, names)),
            scans=tuple(
                BillScan(
                    seq=r.seq,
                    code=r.code,
                    product=r.unit_product,
                    name=names.get(r.unit_product, ""),
                    units=r.units if r.units is not None else 1,
                    carton=r.units is not None and r.units > 1,
                    scanned_at=r.scanned_at,
                    state=r.state,
                    result=r.result,
                    reason=r.reason,
                    removed=r.removed,
                )
                for r in scans
            ),
            removals=tuple(removals),
            has_expected=bool(expected),
        )

    def product_names(self) -> dict[str, str]:
        """The whole product catalogue (code or GTIN -> name)."""
        with self.outbox.bills() as store:
            return store.product_names()

    def pack_units(self) -> tuple[dict[str, tuple[int, str]], dict[str, int]]:
        """Ratios (key -> units, unit product) and children counts per parent code."""
        with self.outbox.bills() as store:
            return store.pack_ratios(), store.children_counts()

    def recode_legacy(self) -> int:
        """Give GS1 rows an earlier version stored the code their scan gets today (once).

        Codes from before the ``\\(`` escape and the (01)-first order are found by
        no form a person types now; the scans and the refusal aggregates holding one
        get today's; see ``scanner_agent/outbox/_recode.py``.
        """
        return self.outbox.recode_legacy(_gs1_code_of)

    def lookup(self, code: str, *, limit: int = 200) -> CodeHistory:
        """A code's history: its scans on every bill, refusals, removals."""
        with self.outbox.bills() as store:
            scans = tuple(store.code_scans(code, limit))
            refused = tuple(store.code_refusals(code, limit))
            removals = tuple(store.removals(code=code))
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
        checked = checked_params(number, params) if params else {}
        kind = bill_type(type_code)
        action = action or kind.action
        with self.outbox.bills() as store:
            if store.stored_state(number) is not None:
                raise BillError(f"Failed to open bill {number!r}: it exists", code="conflict")
            if store.has_scans(number):
                raise BillError(
                    f"Failed to open bill {number!r}: scans were already taken under that "
                    "number (a default or source bill)",
                    code="conflict",
                )
            other = store.open_bill_for(device_id, action)
            if other is not None:
                raise BillError(
                    f"Failed to open bill {number!r}: bill {other!r} is open for {action} "
                    f"on {device_id}; close it first",
                    code="conflict",
                )
            store.insert_bill(
                BillRow(
                    number,
                    kind.code,
                    action,
                    device_id,
                    from_party,
                    to_party,
                    note,
                    BillState.OPEN.value,
                    store.now,
                    None,
                )
            )
            entries = [(number, "open", f"type {kind.code} {kind.zh}, action {action}")]
            if checked:
                params_json = json.dumps(
                    checked, ensure_ascii=False, sort_keys=True, separators=(",", ":")
                )
                entries.append((number, PARAMS_EVENT, params_json))
            store.log(entries)
            bill = self._one(store, number)
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
        with self.outbox.bills() as store:
            state = _explicit_state(store, number, "close")
            if state != BillState.OPEN.value:
                raise BillError(f"Failed to close bill {number!r}: it is {state}", code="conflict")
            store.close_bill(number)
            bill = self._one(store, number)
            assert bill is not None
            totals = f"{plural(bill.totals.scans, 'scan')}, {plural(bill.totals.units, 'unit')}"
            store.log([(number, "close", totals)])
        log.info("bill %s closed: %d scans handed to sync", number, bill.totals.scans)
        return bill

    def undo(self, number: str, *, reason: str, origin: str = "") -> Removal:
        """Take the bill's last scan off it.

        Raises:
            BillError: the bill is closed, has no scan left, or its last scan was sent.
        """
        with self.outbox.bills() as store:
            _check_editable(store, number, "undo a scan of")
            seq = store.last_scan(number)
            if seq is None:
                raise BillError(f"Failed to undo a scan of bill {number!r}: it has no scans")
            return _remove(store, number, seq, reason, origin)

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
        with self.outbox.bills() as store:
            _check_editable(store, number, "remove a scan from")
            found = store.scan_on_bill(number, seq=seq, code=code)
            if found is None:
                what = f"scan {seq}" if seq is not None else f"code {code!r}"
                raise BillError(
                    f"Failed to remove {what} from bill {number!r}: not on it", code="not_found"
                )
            return _remove(store, number, found, reason, origin)

    def import_expected(self, number: str, lines: Sequence[ExpectedLine]) -> int:
        """Replace the bill's expected list; names also go to the product catalogue.

        Raises:
            BillError: no such bill, or it is not open.
        """
        with self.outbox.bills() as store:
            state = _explicit_state(store, number, "import the expected list of")
            if state != BillState.OPEN.value:
                raise BillError(
                    f"Failed to import the expected list of bill {number!r}: it is {state}",
                    code="conflict",
                )
            store.replace_expected(number, [(e.product, e.name, e.count) for e in lines])
            store.upsert_names((e.product, e.name) for e in lines)
            total = sum(e.count for e in lines)
            expected = f"{plural(len(lines), 'product')}, {plural(total, 'unit')} expected"
            store.log([(number, "import", expected)])
        return len(lines)

    def import_packs(self, table: PackTable) -> tuple[int, int]:
        """Add (or replace) pack ratios and parent -> child relations.

        Returns:
            ``(ratios, relations)`` imported.
        """
        with self.outbox.bills() as store:
            store.upsert_packs(
                ((r.key, r.units, r.unit_product, r.name) for r in table.ratios), table.children
            )
            store.upsert_names((r.key, r.name) for r in table.ratios)
        return len(table.ratios), len(table.children)

    def platform_params(self, number: str) -> dict[str, str]:
        """The bill's own optional platform parameters (given at open); empty when none."""
        with self.outbox.bills() as store:
            detail = store.log_detail(number, PARAMS_EVENT, last=True)
        if detail is None:
            return {}
        try:
            data = json.loads(detail)
        except ValueError:
            log.warning("bill %s: unreadable %s entry ignored", number, PARAMS_EVENT)
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def history(self, number: str, *, must_exist: bool = False) -> list[dict[str, str]]:
        """The bill's log, oldest first: open, imports, removals with reasons, close, and what a
        platform sink recorded (``upload-plan``, ``upload``, ``platform-status``, ``platform-ack``).

        A default bill has scans but no log: its history is empty.

        Raises:
            BillError: ``must_exist`` and the number has neither log entries, nor
                a bill, nor scans (``not_found``).
        """
        with self.outbox.bills() as store:
            entries = [
                {"at": at, "event": event, "detail": detail}
                for _bill, at, event, detail in store.log_entries(bill=number)
            ]
            known = bool(entries) or store.stored_state(number) is not None
            if must_exist and not known and not store.has_scans(number):
                raise BillError(f"Failed to find bill {number!r}", code="not_found")
        return entries


def _explicit_state(store: BillStore, number: str, doing: str) -> str:
    """The stored state of an opened bill.

    Raises:
        BillError: no bill was opened under ``number`` (``not_found``).
    """
    state = store.stored_state(number)
    if state is None:
        raise BillError(f"Failed to {doing} bill {number!r}: no such bill", code="not_found")
    return state


def _check_editable(store: BillStore, number: str, doing: str) -> None:
    """Scans may be taken off an open bill or a default bill that has scans.

    Raises:
        BillError: the bill is closed (``conflict``), or there is no such bill.
    """
    state = store.stored_state(number)
    if state is not None and state != BillState.OPEN.value:
        raise BillError(
            f"Failed to {doing} bill {number!r}: it is closed (scan a return bill instead)",
            code="conflict",
        )
    if state is None and not store.has_scans(number):
        raise BillError(f"Failed to {doing} bill {number!r}: no such bill", code="not_found")


def _remove(store: BillStore, number: str, seq: int, reason: str, origin: str) -> Removal:
    """Take scan ``seq`` off the bill, keeping why; only a scan not yet sent.

    Raises:
        BillError: no reason given, or the scan was already sent (``conflict``).
    """
    reason = " ".join(reason.split())
    if not reason:
        raise BillError("Failed to remove a scan: a reason is required")
    event_id, code, state = store.scan_state(seq)
    if state not in (RowState.PENDING, RowState.HELD):
        raise BillError(
            f"Failed to remove scan {seq} ({code}) from bill {number!r}: it was already "
            f"sent ({state}); record the movement on a return bill instead",
            code="conflict",
        )
    # Not deleted: flagged, out of the duplicate check (the code can be scanned again).
    removal = Removal(seq, event_id, number, code, reason, origin, store.now)
    store.remove_scan(removal)
    store.log([(number, "remove", f"scan {seq} {code}: {reason}")])
    log.info("bill %s: scan %d %s removed (%s) by %s", number, seq, code, reason, origin or "?")
    return removal


def _gs1_code_of(raw: str) -> str | None:
    """The stored code ``raw`` gets today if it is a GS1 trace code, else None."""
    parsed = parse_scan(raw)
    return parsed.code if parsed.valid and parsed.scheme == Scheme.GS1 else None
