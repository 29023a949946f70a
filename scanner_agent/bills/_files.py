"""Import files for bills: the expected list and the pack-ratio table, both CSV.

Pure functions from text to frozen rows, so they are tested without a
database.  Column names are matched loosely (English or the Chinese headings
ERP exports use), a UTF-8 BOM is ignored and a tab-separated file works too.

Expected list (one row per product; repeated products are added up)::

    product,name,count            # or gtin / 药品标识码, 名称, 数量
    8123456,阿莫西林胶囊,120

>>> [(e.product, e.count, e.name) for e in parse_expected_csv("product,count,name\\n8123456,120,阿莫西林胶囊\\n")]
[('8123456', 120, '阿莫西林胶囊')]

Pack table: either ratios (a carton product or a carton's own code is so many
units, optionally of another product) or parent -> child relations, where a
carton counts as its number of children::

    product,units,unit_product,name       |   parent,child
    8123450,10,8123456,阿莫西林胶囊 10盒/箱  |   81234500000000011111,81234560000000011234

>>> t = parse_packs_csv("product,units,unit_product\\n8123450,10,8123456\\n")
>>> t.ratios[0].key, t.ratios[0].units, t.ratios[0].unit_product
('8123450', 10, '8123456')
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from scanner_agent.bills._errors import BillError

MAX_IMPORT_BYTES = 8 * 1024 * 1024
"""Largest import file accepted (the control protocol carries it in one line)."""
MAX_IMPORT_ROWS = 5_000
"""Most rows one import may hold.

Why: an import is written in one transaction on the outbox thread, the thread that
commits every scan, so its size is how long every scanner waits for its ACK.  A
1 MiB expected list (42,500 products) kept a scanner waiting 2.1 s; 5,000 rows
take tens of milliseconds (issue 16, bench/attack.py ``control-import``).  Pack
imports add to what is there, so a larger pack file is imported in parts.
"""

_PRODUCT = (
    "product",
    "gtin",
    "product_code",
    "code",
    "药品标识码",
    "商品编码",
    "产品编码",
    "标识码",
)
_COUNT = ("count", "qty", "quantity", "expected", "数量", "应扫数量", "计划数量")
_NAME = ("name", "product_name", "名称", "药品名称", "品名", "通用名")
_PARENT = ("parent", "carton", "parent_code", "箱码", "父码", "上级码")
_CHILD = ("child", "child_code", "子码", "下级码")
_UNITS = ("units", "ratio", "pack_ratio", "包装比例", "数量")
_RATIO_KEY = ("product", "gtin", "code", "parent", "carton", "药品标识码", "箱码")
_UNIT_PRODUCT = ("unit_product", "child_product", "单品标识码", "小包装标识码")


def normalize_product(text: str) -> str:
    """A product key as scans carry it: GTIN-8/12/13 padded to 14 digits.

    >>> normalize_product(" 6901234567892 "), normalize_product("8123456")
    ('06901234567892', '8123456')
    """
    key = text.strip()
    if key.isascii() and key.isdigit() and len(key) in (8, 12, 13):
        return key.zfill(14)
    return key


@dataclass(frozen=True, slots=True)
class ExpectedLine:
    """One product of an expected list."""

    product: str
    count: int
    name: str = ""


@dataclass(frozen=True, slots=True)
class PackRatio:
    """``key`` (a carton's code, or a carton product code/GTIN) holds ``units`` units."""

    key: str
    units: int
    unit_product: str = ""
    """The product the units are ('' = the same product as the key)."""
    name: str = ""


@dataclass(frozen=True, slots=True)
class PackTable:
    """What a pack-ratio file holds."""

    ratios: tuple[PackRatio, ...] = ()
    children: tuple[tuple[str, str], ...] = ()
    """``(parent code, child code)`` relations."""


def _rows(text: str, what: str) -> tuple[dict[str, int], Iterator[tuple[int, list[str]]]]:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_IMPORT_BYTES:
        raise BillError(f"Failed to read the {what}: larger than {MAX_IMPORT_BYTES} bytes")
    text = text.lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise BillError(f"Failed to read the {what}: the file is empty") from None
    columns = {h.strip().lower(): i for i, h in enumerate(header) if h.strip()}

    def body() -> Iterator[tuple[int, list[str]]]:
        rows = 0
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows += 1
                    if rows > MAX_IMPORT_ROWS:
                        raise BillError(
                            f"Failed to read the {what}: more than {MAX_IMPORT_ROWS:,} rows "
                            "(one import is written while every scan waits; split a pack "
                            "file into parts, each adds to what is there)"
                        )
                    yield reader.line_num, row
        except csv.Error as exc:
            raise BillError(f"Failed to read line {reader.line_num} of the {what}: {exc}") from exc

    return columns, body()


def _column(columns: dict[str, int], names: tuple[str, ...]) -> int | None:
    for n in names:
        if n in columns:
            return columns[n]
    return None


def _cell(row: list[str], index: int | None) -> str:
    if index is None or index >= len(row):
        return ""
    return row[index].strip()


def _count(text: str, line: int, what: str, *, minimum: int) -> int:
    try:
        value = int(text.replace(",", "")) if text else -1
    except ValueError:
        value = -1
    if value < minimum:
        raise BillError(
            f"Failed to read line {line} of the {what}: expected a whole number >= {minimum}, "
            f"got {text!r}"
        )
    return value


def parse_expected_csv(text: str) -> list[ExpectedLine]:
    """Parse an expected list; one line per product, counts of a repeated product added.

    Raises:
        BillError: naming the line and what is wrong with it.
    """
    what = "expected list"
    columns, rows = _rows(text, what)
    product_col = _column(columns, _PRODUCT)
    count_col = _column(columns, _COUNT)
    if product_col is None or count_col is None:
        raise BillError(
            f"Failed to read the {what}: expected a header with product and count columns, "
            f"got {', '.join(columns) or 'none'}"
        )
    name_col = _column(columns, _NAME)
    merged: dict[str, ExpectedLine] = {}
    for line, row in rows:
        product = normalize_product(_cell(row, product_col))
        if not product:
            raise BillError(f"Failed to read line {line} of the {what}: no product")
        count = _count(_cell(row, count_col), line, what, minimum=0)
        name = _cell(row, name_col)
        old = merged.get(product)
        if old is not None:
            merged[product] = ExpectedLine(product, old.count + count, old.name or name)
        else:
            merged[product] = ExpectedLine(product, count, name)
    return list(merged.values())


def parse_packs_csv(text: str) -> PackTable:
    """Parse a pack-ratio file: ratios (``units``) or parent -> child relations.

    Raises:
        BillError: naming the line and what is wrong with it.
    """
    what = "pack table"
    columns, rows = _rows(text, what)
    parent_col = _column(columns, _PARENT)
    child_col = _column(columns, _CHILD)
    if child_col is not None:
        if parent_col is None:
            raise BillError(f"Failed to read the {what}: a child column needs a parent column")
        children: list[tuple[str, str]] = []
        for line, row in rows:
            parent, child = _cell(row, parent_col), _cell(row, child_col)
            if not parent or not child:
                raise BillError(f"Failed to read line {line} of the {what}: empty parent or child")
            children.append((parent, child))
        return PackTable(children=tuple(children))
    key_col = _column(columns, _RATIO_KEY)
    units_col = _column(columns, _UNITS)
    if key_col is None or units_col is None:
        raise BillError(
            f"Failed to read the {what}: expected columns product,units[,unit_product][,name] "
            f"or parent,child; got {', '.join(columns) or 'none'}"
        )
    unit_col = _column(columns, _UNIT_PRODUCT)
    name_col = _column(columns, _NAME)
    ratios: dict[str, PackRatio] = {}
    for line, row in rows:
        key = normalize_product(_cell(row, key_col))
        if not key:
            raise BillError(f"Failed to read line {line} of the {what}: no product or code")
        ratios[key] = PackRatio(
            key=key,
            units=_count(_cell(row, units_col), line, what, minimum=1),
            unit_product=normalize_product(_cell(row, unit_col)),
            name=_cell(row, name_col),
        )
    return PackTable(ratios=tuple(ratios.values()))
