"""The daemon's bill desk: bill commands from the event loop, and the routing of scans.

:class:`BillDesk` runs every :class:`BillBook` call on the outbox thread and
keeps in memory what the hot path needs without touching SQLite: the open
bill per action (``bill_for``, called for every scan), product names and
pack ratios (to describe a scan in the live stream).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

from scanner_agent.bills._book import BillBook
from scanner_agent.bills._errors import BillError
from scanner_agent.bills._files import parse_expected_csv, parse_packs_csv
from scanner_agent.bills._models import Bill, BillView, CodeHistory, Removal
from scanner_agent.bills._types import bill_type
from scanner_agent.kernel import Lane
from scanner_agent.outbox import OutboxThread

log = logging.getLogger(__name__)

_P = TypeVar("_P")

BillListener = Callable[[str, str, dict[str, Any]], None]


class _Terms(NamedTuple):
    """A bill about to be opened, as the sink's admission rule reads one."""

    number: str
    type: int
    from_party: str
    to_party: str


"""``(what, bill number, details)``: opened, closed, removed, imported."""


class BillDesk:
    """Bills of one device (``device_id``), served on the daemon's loop."""

    def __init__(
        self,
        thread: OutboxThread,
        *,
        device_id: str,
        on_close: Callable[[], None] | None = None,
        before_close: Callable[[], Awaitable[None]] | None = None,
        bill_problem: Callable[[str, Any], str | None] | None = None,
        parse_lane: Lane | None = None,
    ) -> None:
        self._thread = thread
        self._parse_lane = parse_lane
        """Where imported CSV text is parsed (None: here); never the loop in the daemon."""
        self.book = BillBook(thread.outbox)
        self.device_id = device_id
        self._on_close = on_close
        self._before_close = before_close
        """Awaited once the bill no longer takes scans and before it closes: the daemon
        flushes its group committer, so every scan routed to the bill while it was open
        is committed onto it (and counted in its totals) before the close."""
        self._bill_problem = bill_problem
        """``(number, bill) -> why`` the sync sink could never take the bill's scans (its
        admission rule, reading ``number``, ``type``, ``from_party``, ``to_party``), or
        None; a bill it refuses is not opened."""
        self._open: dict[str, Bill] = {}
        """Open bill per action on this device."""
        self.names: dict[str, str] = {}
        """Product code or GTIN -> name."""
        self._ratios: dict[str, tuple[int, str]] = {}
        self._children: dict[str, int] = {}
        self.listeners: list[BillListener] = []
        """Told of every change (the control interface's event stream)."""

    async def start(self) -> None:
        """Load the open bills and the catalogue (after the outbox opened).

        GS1 codes an earlier version stored are re-derived first (once per file), so
        lookups, removals and the duplicate check find them by today's code.
        """
        await self._thread.call(self.book.recode_legacy)
        await self._reload_open()
        self.names = await self._thread.call(self.book.product_names)
        self._ratios, self._children = await self._thread.call(self.book.pack_units)

    async def _reload_open(self) -> None:
        bills = await self._thread.call(self.book.open_bills, self.device_id)
        self._open = {b.action: b for b in bills}

    # -- hot path (event loop, no I/O) ----------------------------------------

    def bill_for(self, action: str) -> str | None:
        """The bill open for ``action`` on this device, if any."""
        bill = self._open.get(action)
        return bill.number if bill is not None else None

    def opened(self, number: str) -> Bill | None:
        """The bill ``number`` if it is open on this device (a few open bills: a short scan)."""
        for bill in self._open.values():
            if bill.number == number:
                return bill
        return None

    @property
    def open_bills(self) -> list[Bill]:
        """Bills open on this device (as last loaded)."""
        return list(self._open.values())

    def describe(self, code: str | None, product: str | None) -> tuple[str, int, bool]:
        """``(product name, units, is a carton)`` of a scanned code, from memory."""
        units: int | None = None
        unit_product = product or ""
        if code and code in self._children:
            units = self._children[code]
        else:
            for key in (code, product):
                if key and key in self._ratios:
                    units, up = self._ratios[key]
                    unit_product = up or unit_product
                    break
        name = self.names.get(unit_product) or self.names.get(product or "", "")
        return name, units or 1, units is not None and units > 1

    # -- commands -----------------------------------------------------------------

    def _tell(self, what: str, number: str, **details: Any) -> None:
        for listener in self.listeners:
            try:
                listener(what, number, details)
            except Exception:
                log.exception("bill listener failed")

    def current(self, number: str | None) -> str:
        """The bill a command without a number means: the only open one.

        Raises:
            BillError: none or several are open.
        """
        if number:
            return number
        bills = self.open_bills
        if len(bills) == 1:
            return bills[0].number
        if not bills:
            raise BillError("Failed to pick a bill: none is open; name one", code="not_found")
        names = ", ".join(b.number for b in bills)
        raise BillError(f"Failed to pick a bill: several are open ({names}); name one")

    async def open(self, number: str, type_code: int | str, **fields: Any) -> Bill:
        """Open a bill on this device (see :meth:`BillBook.open`).

        Raises:
            BillError: as :meth:`BillBook.open`, or the sync sink would refuse every scan
                of the bill (a party it needs is missing, a type it does not take).
        """
        if self._bill_problem is not None:
            terms = _Terms(
                number,
                bill_type(type_code).code,
                fields.get("from_party") or "",
                fields.get("to_party") or "",
            )
            problem = self._bill_problem(number, terms)
            if problem is not None:
                raise BillError(f"Failed to open bill {number!r}: {problem}")
        bill = await self._thread.call(
            self.book.open, number, type_code, device_id=self.device_id, **fields
        )
        self._open[bill.action] = bill
        self._tell("opened", bill.number, action=bill.action, type=bill.type)
        return bill

    async def close(self, number: str | None = None) -> Bill:
        """Close a bill and hand its scans to sync."""
        number = self.current(number)
        # Stop routing scans to the bill first (the intake reads ``_open`` right before
        # it queues a scan), then let the scans already routed to it commit.  A failed
        # close reloads it from the file: still open there, it takes scans again.
        closing = self.opened(number)
        if closing is not None:
            del self._open[closing.action]
        try:
            if self._before_close is not None:
                await self._before_close()
            bill = await self._thread.call(self.book.close, number)
        finally:
            await self._reload_open()
        if self._on_close is not None:
            self._on_close()
        self._tell("closed", bill.number, scans=bill.totals.scans)
        return bill

    async def undo(self, number: str | None, *, reason: str, origin: str = "") -> Removal:
        """Take the last scan off a bill."""
        number = self.current(number)
        removal = await self._thread.call(self.book.undo, number, reason=reason, origin=origin)
        self._tell("removed", number, seq=removal.seq, code=removal.code, reason=removal.reason)
        return removal

    async def remove(
        self,
        number: str | None,
        *,
        reason: str,
        seq: int | None = None,
        code: str | None = None,
        origin: str = "",
    ) -> Removal:
        """Take one scan off a bill."""
        number = self.current(number)
        removal = await self._thread.call(
            self.book.remove, number, reason=reason, seq=seq, code=code, origin=origin
        )
        self._tell("removed", number, seq=removal.seq, code=removal.code, reason=removal.reason)
        return removal

    async def import_expected(self, number: str | None, text: str) -> int:
        """Replace a bill's expected list from CSV text."""
        number = self.current(number)
        lines = await self._parse(parse_expected_csv, text)
        n = await self._thread.call(self.book.import_expected, number, lines)
        self.names.update({e.product: e.name for e in lines if e.name})
        self._tell("imported", number, products=n)
        return n

    async def import_packs(self, text: str) -> tuple[int, int]:
        """Add pack ratios or parent -> child relations from CSV text."""
        table = await self._parse(parse_packs_csv, text)
        counts = await self._thread.call(self.book.import_packs, table)
        self.names.update({r.key: r.name for r in table.ratios if r.name})
        self._ratios, self._children = await self._thread.call(self.book.pack_units)
        return counts

    async def _parse(self, parse: Callable[[str], _P], text: str) -> _P:
        if self._parse_lane is None:
            return parse(text)
        return await self._parse_lane.run(parse, text)

    async def view(self, number: str | None = None, *, scan_limit: int = 100) -> BillView:
        """The bill screen's data."""
        number = self.current(number)
        return await self._thread.call(self.book.view, number, scan_limit=scan_limit)

    async def list_bills(self, *, state: str | None = None, limit: int = 50) -> list[Bill]:
        """Opened bills, newest first."""
        return await self._thread.call(self.book.list_bills, state=state, limit=limit)

    async def history(self, number: str | None = None) -> list[dict[str, str]]:
        """The bill's log."""
        return await self._thread.call(self.book.history, self.current(number))

    async def lookup(self, code: str) -> CodeHistory:
        """A code's history."""
        return await self._thread.call(self.book.lookup, code)
