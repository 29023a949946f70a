"""MA codes (IDcode), issued under ISO/IEC 15459 issuing agency code "MA".

The MA code system (IDcode, run in China by 中关村工信二维码技术研究院 with
the national article numbering bodies) is a dot-separated tree of nodes, each
made of ASCII letters and digits: ``MA.<country>.<...>``. Its published
structure is a user root of four nodes (``MA``, the ISO 3166 numeric country
code such as ``156``, then two registrant nodes, e.g. ``MA.156.M0.100001``),
an object category and a free, user-defined part. Parts may also be separated
by ``/``.

For unit-level codes (as used for medical devices) the production data follow
the identifier as *data units*, each introduced by ``.`` and one letter:
``L`` batch, ``S`` serial, ``M`` production date, ``D`` sterilisation batch,
``V`` validity date, ``E`` expiry date; the dates are 6 or 8 digits.

Since a user-defined node may itself start with one of those letters, we
only split out product/serial/batch when the *whole tail* of the code reads
as data units (no repeated unit, well-formed dates) and at least one product
node follows the user root. Otherwise the parts stay ``None`` and the code is
still accepted on format: the platform, not the scanner, knows which MA codes
were issued.
"""

from __future__ import annotations

import re

from scanner_agent.codes._result import Decoded, Scheme

PREFIX = "MA."
MIN_LENGTH = 10
MAX_LENGTH = 256
"""Sanity bounds: the shortest plausible code is ``MA.156.X.Y``; QR capacity aside,
nothing longer than 256 characters is an identifier anyone types or prints."""

MIN_NODES = 4
"""``MA``, the country code and at least two registrant nodes (the user root)."""

FIRST_DATA_UNIT = MIN_NODES + 1
"""Data units may start only after the user root and one product node."""

NODE = re.compile(r"[A-Za-z0-9]+")
SEPARATOR = re.compile(r"[./]")
COUNTRY = re.compile(r"\d{3}")
DATE_UNITS = frozenset("MVE")
DATA_UNITS = frozenset("LSMDVE")


def looks_like_ma(text: str) -> bool:
    """Whether the scan claims to be an MA code."""
    return text.startswith(PREFIX)


def parse_ma(text: str) -> Decoded | str:
    """Check an MA code's format and pick out its parts when unambiguous."""
    if len(text) < MIN_LENGTH:
        return "ma code too short"
    if len(text) > MAX_LENGTH:
        return f"ma code too long ({len(text)} characters)"
    nodes = SEPARATOR.split(text)
    for node in nodes:
        if not node:
            return "ma code has an empty segment"
        if not (node.isascii() and NODE.fullmatch(node)):
            return "ma code has characters other than letters, digits, '.' and '/'"
    if len(nodes) < MIN_NODES:
        return f"ma code needs at least {MIN_NODES} segments, got {len(nodes)}"
    if not COUNTRY.fullmatch(nodes[1]):
        return "ma code country segment must be 3 digits"

    start = _data_units_start(nodes)
    if start is None:
        return Decoded(scheme=Scheme.MA, code=text)
    units = {node[0]: node[1:] for node in nodes[start:]}
    # The product part is the code up to the separator before the first unit.
    cut = sum(len(node) + 1 for node in nodes[:start]) - 1
    return Decoded(
        scheme=Scheme.MA,
        code=text,
        product=text[:cut],
        serial=units.get("S"),
        batch=units.get("L"),
    )


def _data_units_start(nodes: list[str]) -> int | None:
    """Index of the first data unit if the tail is entirely data units."""
    start: int | None = None
    seen: set[str] = set()
    for index in range(len(nodes) - 1, FIRST_DATA_UNIT - 1, -1):
        node = nodes[index]
        letter, value = node[0], node[1:]
        if letter not in DATA_UNITS or letter in seen or not value:
            break
        if letter in DATE_UNITS and not (value.isdigit() and len(value) in (6, 8)):
            break
        seen.add(letter)
        start = index
    return start
