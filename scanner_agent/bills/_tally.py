"""A bill's totals and its progress against its expected list: pure arithmetic over the counts
:class:`~scanner_agent.bills.BillBook` reads in its transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from scanner_agent.bills._models import (
    BillTotals,
    ProgressLine,
)
from scanner_agent.outbox import (
    BillCounts,
    ProductGroup,
    RowState,
)


def bill_totals(counts: BillCounts) -> BillTotals:
    """A bill's totals from the counts over its rows."""
    states = counts.states
    return BillTotals(
        scans=sum(states[s] for s in RowState if s is not RowState.REMOVED),
        cartons=counts.cartons,
        units=counts.units,
        removed=states[RowState.REMOVED],
        pending=states[RowState.PENDING],
        held=states[RowState.HELD],
        in_flight=states[RowState.IN_FLIGHT],
        delivered=states[RowState.DELIVERED],
        duplicate=counts.duplicate,
        rejected=states[RowState.REJECTED],
        quarantined=states[RowState.QUARANTINED],
    )


def bill_progress(
    expected: dict[str, tuple[int, str]],
    groups: Sequence[ProductGroup],
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
