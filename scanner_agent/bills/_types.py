"""Bill types (单据类型) of the trace platform, read from the shipped ``bill_types.toml``.

>>> t = bill_type(201)
>>> t.zh, t.en, t.direction, t.action
('销售出库', 'Sales shipment', 'out', 'ship')
>>> bill_type("102").action
'purchase'
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources

from scanner_agent.bills._errors import BillError
from scanner_agent.kernel import ACTIONS


@dataclass(frozen=True, slots=True)
class BillType:
    """One bill type of the platform."""

    code: int
    """The platform's ``bill_type`` (101 生产入库 ... 201 销售出库 ...)."""
    zh: str
    """Chinese name, as the platform shows it."""
    en: str
    """English name."""
    direction: str
    """``in`` or ``out`` of stock."""
    action: str
    """The Trace API v1 action of the bill's scans."""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "code": self.code,
            "zh": self.zh,
            "en": self.en,
            "direction": self.direction,
            "action": self.action,
        }


@functools.cache
def bill_types() -> dict[int, BillType]:
    """Every known bill type by code, in the data file's order.

    Raises:
        BillError: the shipped data file is malformed (a packaging bug).
    """
    text = resources.files("scanner_agent.bills").joinpath("bill_types.toml").read_text("utf-8")
    out: dict[int, BillType] = {}
    for i, row in enumerate(tomllib.loads(text).get("type", [])):
        try:
            t = BillType(
                code=int(row["code"]),
                zh=str(row["zh"]),
                en=str(row["en"]),
                direction=str(row["direction"]),
                action=str(row["action"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BillError(f"Failed to read bill type #{i} of bill_types.toml: {exc}") from exc
        if t.action not in ACTIONS or t.direction not in ("in", "out") or t.code in out:
            raise BillError(f"Failed to read bill type {t.code} of bill_types.toml: bad row")
        out[t.code] = t
    return out


def bill_type(code: int | str) -> BillType:
    """The bill type with this code.

    Raises:
        BillError: no such type.
    """
    try:
        key = int(code)
    except (TypeError, ValueError):
        key = -1
    found = bill_types().get(key)
    if found is None:
        known = ", ".join(str(c) for c in bill_types())
        raise BillError(f"Failed to find bill type {code!r}: expected one of {known}")
    return found
