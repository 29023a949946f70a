"""Bills (出入库单据): what a dispatch clerk scans against.

A bill has a number, a platform bill type (``bill_types.toml``), parties, an
optional expected list and a state.  Scans taken while it is open belong to
it and are held back from sync until it is closed; scans with no open bill go
to the device's default bill for their action.  See ``docs/control.md``.
"""

from scanner_agent.bills._book import BillBook
from scanner_agent.bills._desk import BillDesk
from scanner_agent.bills._errors import BillError
from scanner_agent.bills._files import (
    ExpectedLine,
    PackRatio,
    PackTable,
    normalize_product,
    parse_expected_csv,
    parse_packs_csv,
)
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
from scanner_agent.bills._params import parse_param_pairs
from scanner_agent.bills._types import BillType, bill_type, bill_types

__all__ = [
    "Bill",
    "BillBook",
    "BillDesk",
    "BillError",
    "BillScan",
    "BillState",
    "BillTotals",
    "BillType",
    "BillView",
    "CodeHistory",
    "ExpectedLine",
    "PackRatio",
    "PackTable",
    "ProgressLine",
    "Removal",
    "bill_type",
    "bill_types",
    "normalize_product",
    "parse_expected_csv",
    "parse_packs_csv",
    "parse_param_pairs",
]
