"""医保 (NHSA) records of a bill: what a pharmacy's insurance client sends with its trace codes.

The national medical insurance information platform (医疗保障信息平台) takes a
designated pharmacy's stock movements as numbered transactions; the ones that
carry drug trace codes and that a scanned bill maps onto are:

* **3505 商品销售** (sale): input node ``selinfo``;
* **3506 商品销售退货** (sale return, *not* a stock change): input node ``selinfo``;
* **3502 商品库存变更** (stock change): input node ``invinfo``.

Each record carries the codes of the boxes it covers as a list node
``drugtracinfo`` of ``{"drug_trac_codg": <code>}`` entries, one per box.

This module only builds the records (pure functions); the insurance client
signs and sends them.  The agent knows the codes, how many boxes, when they
were scanned and, from a GS1 code, the lot (AI 10), production date (AI 11)
and expiry (AI 17).  Everything else (the insurance catalogue code
``med_list_codg``, the pharmacy's own item number and batch serial, the
prescriber, pharmacist, patient and settlement ids ...) is the pharmacy's:
it comes from a catalogue file per product or from ``--set FIELD=VALUE``, and
a required field left empty is listed in the export's ``missing``, never
made up.  Defaults taken: ``rtal_docno`` (零售单据号) is the bill number, and
``fixmedins_hilist_name`` falls back to the product name the site imported.
Counts are boxes (one per trace code; a carton counts as its units); a
catalogue that prices in a smaller unit must convert.

Sources for the field names, order and required flags (no official
specification text was available to check against; a site should compare
with the interface document of its province):

* github.com/newtouch-cloud/openhis ``WinServiceAPI/YiBaoInterface/Models/Input/``
  ``Input_3502.cs`` (``invinfo``), ``Input_3505.cs`` and ``Input_3506.cs``
  (``selinfo``): the field names of the three inputs;
* github.com/fengzaiqishi11/hsa-his
  ``hsa-com/src/main/java/cn/hsa/module/insure/stock/entity/InsureGoodSell.java``:
  3505 fields with type, length and required flag;
* an open HIS codebase indexed without its repository name (Java package
  ``com.openhis``, classes ``InventorySaleRecord`` 【3505】, ``Medical3506Param``
  【3506】 and ``MedicalInventory3502Param`` 【3502】, dated 2025): the same
  fields numbered with 必填 flags, the time format ``yyyy-MM-dd HH:mm:ss``, and
  the ``drugtracinfo`` node of ``drug_trac_codg`` entries (``MedicalTraceNoDto``).
  The node's name is configurable (``trace_node``) because other integrations
  spell it ``drug_trac_info``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from scanner_agent.bills import BillBook
from scanner_agent.codes import parse_gs1
from scanner_agent.outbox import Outbox

__all__ = [
    "FIELDS",
    "INPUT_NODES",
    "NAMES",
    "REQUIRED",
    "Box",
    "RecordType",
    "build_export",
    "export_bill",
    "parse_catalog_csv",
    "parse_settings",
    "record_type_for",
]

RecordType = Literal["3505", "3506", "3502"]

NAMES: dict[str, str] = {"3505": "商品销售", "3506": "商品销售退货", "3502": "商品库存变更"}
INPUT_NODES: dict[str, str] = {"3505": "selinfo", "3506": "selinfo", "3502": "invinfo"}

FIELDS: dict[str, tuple[str, ...]] = {
    "3505": (
        "med_list_codg",
        "fixmedins_hilist_id",
        "fixmedins_hilist_name",
        "fixmedins_bchno",
        "prsc_dr_cert_type",
        "prsc_dr_certno",
        "prsc_dr_name",
        "phar_cert_type",
        "phar_certno",
        "phar_name",
        "phar_prac_cert_no",
        "hi_feesetl_type",
        "setl_id",
        "mdtrt_sn",
        "psn_no",
        "psn_cert_type",
        "certno",
        "psn_name",
        "manu_lotnum",
        "manu_date",
        "expy_end",
        "rx_flag",
        "trdn_flag",
        "finl_trns_pric",
        "rxno",
        "rx_circ_flag",
        "rtal_docno",
        "stoout_no",
        "bchno",
        "drug_prod_barc",
        "shelf_posi",
        "sel_retn_cnt",
        "sel_retn_time",
        "sel_retn_opter_name",
        "memo",
        "mdtrt_setl_type",
    ),
    "3506": (
        "med_list_codg",
        "fixmedins_hilist_id",
        "fixmedins_hilist_name",
        "fixmedins_bchno",
        "setl_id",
        "psn_no",
        "psn_cert_type",
        "certno",
        "psn_name",
        "manu_lotnum",
        "manu_date",
        "expy_end",
        "rx_flag",
        "trdn_flag",
        "finl_trns_pric",
        "sel_retn_cnt",
        "sel_retn_time",
        "sel_retn_opter_name",
        "memo",
        "medins_prod_sel_no",
        "mdtrt_sn",
    ),
    "3502": (
        "med_list_codg",
        "inv_chg_type",
        "fixmedins_hilist_id",
        "fixmedins_hilist_name",
        "fixmedins_bchno",
        "pric",
        "cnt",
        "rx_flag",
        "inv_chg_time",
        "inv_chg_opter_name",
        "memo",
        "trdn_flag",
    ),
}
"""Each record type's fields in the order of the sources (the trace-code node comes last)."""

_ITEM = ("med_list_codg", "fixmedins_hilist_id", "fixmedins_hilist_name", "fixmedins_bchno")
REQUIRED: dict[str, frozenset[str]] = {
    "3505": frozenset(
        (
            *_ITEM,
            *("prsc_dr_name", "phar_name", "phar_prac_cert_no", "hi_feesetl_type", "mdtrt_sn"),
            *("psn_cert_type", "manu_lotnum", "manu_date", "expy_end", "rx_flag", "trdn_flag"),
            *("rx_circ_flag", "rtal_docno", "sel_retn_cnt", "sel_retn_time", "sel_retn_opter_name"),
        )
    ),
    "3506": frozenset(
        (
            *_ITEM,
            *("psn_cert_type", "manu_lotnum", "manu_date", "expy_end", "rx_flag", "trdn_flag"),
            *("sel_retn_cnt", "sel_retn_time", "sel_retn_opter_name", "mdtrt_sn"),
        )
    ),
    "3502": frozenset(
        (*_ITEM, "inv_chg_type", "pric", "cnt", "rx_flag", "inv_chg_time", "trdn_flag")
    ),
}
"""Fields the sources mark 必填 (required)."""

_COUNT = {"3505": "sel_retn_cnt", "3506": "sel_retn_cnt", "3502": "cnt"}
_TIME = {"3505": "sel_retn_time", "3506": "sel_retn_time", "3502": "inv_chg_time"}
_SALE_ACTIONS = frozenset({"sale", "dispense"})
_SALE_TYPES = frozenset({201})  # 销售出库
_SALE_RETURN_TYPES = frozenset({116})  # 消费者退货入库
_PURCHASE_TYPES = {102: "3503 商品采购", 202: "3504 商品采购退货"}


@dataclass(frozen=True, slots=True)
class Box:
    """One trace code on the bill, as the export needs it."""

    code: str
    """The normalised code (cn20 digits, or the GS1 HRI form ``(01)…(21)…``)."""
    product: str
    """Product key of the catalogue: cn20 drug code (digits 1-7) or GTIN-14."""
    scanned_at: str
    """RFC 3339 with offset."""
    units: int = 1
    """Boxes the code stands for (more than 1 for a carton code)."""
    name: str = ""
    """The product's name as the site imported it, if any."""


def record_type_for(bill_type: int | None, action: str) -> RecordType:
    """The record a bill becomes: sales are 3505, consumer returns 3506, the rest 3502.

    Raises:
        ValueError: a purchase bill, whose record (3503/3504) this module does not write.
    """
    if action in _SALE_ACTIONS or bill_type in _SALE_TYPES:
        return "3505"
    if bill_type in _SALE_RETURN_TYPES:
        return "3506"
    if bill_type in _PURCHASE_TYPES:
        raise ValueError(
            f"bill type {bill_type} belongs in {_PURCHASE_TYPES[bill_type]}, which is not written"
            " here; choose a record type explicitly to export it anyway"
        )
    return "3502"


def parse_settings(pairs: Iterable[str], record: RecordType) -> dict[str, str]:
    """``FIELD=VALUE`` strings as a mapping, checked against ``record``'s fields.

    Raises:
        ValueError: no ``=``, or a field the record does not have.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"--set {pair!r}: expected FIELD=VALUE")
        if name not in FIELDS[record]:
            raise ValueError(f"--set {name}: not a field of {record} {NAMES[record]}")
        out[name] = value.strip()
    return out


def parse_catalog_csv(text: str, record: RecordType) -> dict[str, dict[str, str]]:
    """A catalogue CSV: a ``product`` column, then NHSA field names; rows by product.

    The product is the cn20 drug code (first 7 digits) or the GTIN-14.  Empty
    cells are left out, so another source may still fill the field.

    Raises:
        ValueError: no ``product`` column, a column that is not a field of
            ``record``, or a product listed twice.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = [c.strip() for c in reader.fieldnames or ()]
    if "product" not in columns:
        raise ValueError("catalogue: no 'product' column")
    unknown = [c for c in columns if c != "product" and c not in FIELDS[record]]
    if unknown:
        raise ValueError(f"catalogue: {unknown[0]!r} is not a field of {record} {NAMES[record]}")
    out: dict[str, dict[str, str]] = {}
    for line, row in enumerate(reader, start=2):
        cells = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        product = cells.pop("product", "")
        if not product:
            continue
        if product in out:
            raise ValueError(f"catalogue line {line}: product {product} listed twice")
        out[product] = {k: v for k, v in cells.items() if v}
    return out


@dataclass(frozen=True, slots=True)
class _Gs1:
    lot: str = ""
    made: str = ""
    expires: str = ""


def _gs1(code: str) -> _Gs1:
    """Lot, production date and expiry from a stored GS1 code (empty when absent or not GS1)."""
    if not code.startswith("("):
        return _Gs1()
    data = parse_gs1(code)  # the agent's own reading of its stored code (a "(" in a value is "\(")
    if isinstance(data, str):
        return _Gs1()

    def day(ai: str) -> str:
        when = data.date(ai)
        return when.isoformat() if when is not None else ""

    return _Gs1(lot=data.value("10") or "", made=day("11"), expires=day("17"))


def _local_time(scanned_at: str) -> str:
    """``yyyy-MM-dd HH:mm:ss`` on the scanning site's own clock (the scan's offset)."""
    return datetime.fromisoformat(scanned_at.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")


def build_export(
    bill: str,
    boxes: Sequence[Box],
    *,
    record: RecordType,
    catalog: Mapping[str, Mapping[str, str]] | None = None,
    settings: Mapping[str, str] | None = None,
    trace_node: str = "drugtracinfo",
) -> dict[str, Any]:
    """The NHSA records of one bill, JSON-ready.

    One record per product and lot (a record has one catalogue code and one
    ``manu_lotnum``), in the order the products were first scanned.  A field
    takes, in rising precedence: ``settings`` (every record), the catalogue
    row of its product, what the scans say (lot, dates, count, time, codes).

    Returns:
        ``{"format": "nhsa", "infno", "infname", "input_node", "bill",
        "records": [...], "missing": [...], "notes": [...]}``; ``missing``
        names, per record, the required fields still empty.
    """
    catalog = catalog or {}
    settings = settings or {}
    groups: dict[tuple[str, str], list[tuple[Box, _Gs1]]] = {}
    for box in boxes:
        gs1 = _gs1(box.code)
        groups.setdefault((box.product, gs1.lot), []).append((box, gs1))
    records: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    notes: list[str] = []
    named_from_site = False
    for (product, lot), members in groups.items():
        row: dict[str, Any] = dict.fromkeys(FIELDS[record], "")
        row.update(settings)
        row.update(catalog.get(product, {}))
        first = members[0]
        if lot:
            row["manu_lotnum"] = lot
        for field, value in (("manu_date", first[1].made), ("expy_end", first[1].expires)):
            if value and field in row:
                row[field] = value
        if record == "3505" and not row["rtal_docno"]:
            row["rtal_docno"] = bill
        if "fixmedins_hilist_name" in row and not row["fixmedins_hilist_name"] and first[0].name:
            row["fixmedins_hilist_name"] = first[0].name
            named_from_site = True
        row[_COUNT[record]] = sum(b.units for b, _ in members)
        row[_TIME[record]] = _local_time(max(members, key=lambda m: m[0].scanned_at)[0].scanned_at)
        row[trace_node] = [{"drug_trac_codg": b.code} for b, _ in members]
        for box, _ in members:
            if box.units > 1:
                notes.append(
                    f"{box.code} is a carton of {box.units} units: its boxes' own codes are not"
                    " known here, so the carton code is listed and counted as its units"
                )
        empty = sorted(f for f in REQUIRED[record] if row.get(f) in ("", None))
        if empty:
            missing.append({"record": len(records), "product": product, "fields": empty})
        records.append(row)
    if named_from_site:
        notes.append("fixmedins_hilist_name: the product name from the site's own product list")
    if any(not b.code.isdigit() for b in boxes):
        notes.append(
            "GS1 codes are listed in their bracketed form; the platform's expected spelling of"
            " non-20-digit codes is not confirmed"
        )
    return {
        "format": "nhsa",
        "infno": record,
        "infname": NAMES[record],
        "input_node": INPUT_NODES[record],
        "bill": bill,
        "records": records,
        "missing": missing,
        "notes": notes,
    }


def export_bill(
    outbox: Outbox,
    number: str,
    *,
    record: str | None = None,
    catalog_csv: str | None = None,
    settings: Sequence[str] = (),
    trace_node: str = "drugtracinfo",
) -> dict[str, Any]:
    """The NHSA records of bill ``number`` in ``outbox`` (``bill export --format nhsa``).

    Removed scans are left out; scans the trace platform rejected are left out
    and listed under ``excluded`` with its reason.  ``record`` forces the record
    type (else :func:`record_type_for` the bill), ``catalog_csv`` is the
    catalogue's text, ``settings`` are ``FIELD=VALUE`` texts for every record.

    Raises:
        BillError: no such bill.
        ValueError: an unknown record type or field, or a bad catalogue.
    """
    book = BillBook(outbox)
    bill = book.get(number)
    limit = bill.totals.scans + bill.totals.removed + 1
    view = book.view(number, scan_limit=limit)
    if record is not None and record not in FIELDS:
        raise ValueError(f"unknown record type {record!r}: expected 3505, 3506 or 3502")
    kind = record_type_for(bill.type, bill.action) if record is None else cast(RecordType, record)
    fields = parse_settings(settings, kind)
    catalog = parse_catalog_csv(catalog_csv, kind) if catalog_csv is not None else {}
    boxes: list[Box] = []
    excluded: list[dict[str, str]] = []
    for s in reversed(view.scans):  # the view lists the newest first
        if s.removed:
            continue
        if s.result == "rejected":
            excluded.append({"code": s.code, "reason": s.reason or "rejected"})
            continue
        boxes.append(Box(s.code, s.product, s.scanned_at, units=s.units, name=s.name))
    doc = build_export(
        number, boxes, record=kind, catalog=catalog, settings=fields, trace_node=trace_node
    )
    doc["excluded"] = excluded
    return doc
