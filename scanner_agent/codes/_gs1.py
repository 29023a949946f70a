"""GS1 trace codes: element strings, HRI text and Digital Link URIs.

All AI knowledge (lengths, patterns, check digits, dates) comes from biip;
this module only decides what makes a GS1 message a *unit trace code*: a GTIN
(AI 01) that passes its check digit plus a serial number (AI 21). Batch (10)
and expiry (17) are carried along because the trace service wants them.

The three encodings of the same data must give the same ``code``, or the
outbox would store one pack twice. The code is the HRI form with the AIs in
a canonical order: predefined-length AIs first, then variable-length ones,
each group by AI number. That is the order GS1 recommends for encoding
(fewest FNC1 separators), so for well-made element strings the code is also
what is printed under the barcode: ``(01)…(17)…(10)…(21)…``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from biip import ParseError
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_messages import GS1Message
from biip.gtin import Gtin

from scanner_agent.codes._result import Decoded, Scheme, one_line

if TYPE_CHECKING:
    from biip.gs1_element_strings import GS1ElementString

GTIN_LENGTHS = frozenset({8, 12, 13, 14})

BARE_ELEMENT_STRING = re.compile(r"01\d{14}")
"""A bare scan starting with AI 01 and a full GTIN is taken to be GS1 data."""

DIGITAL_LINK = re.compile(r"https?://", re.IGNORECASE)

NO_GTIN = "gs1 data without gtin (ai 01): not a unit trace code"
NO_SERIAL = "gs1 data without serial number (ai 21): not a unit trace code"
PRODUCT_BARCODE = "a product barcode, not a trace code"


def looks_like_element_string(text: str) -> bool:
    """Whether data without a GS1 symbology identifier should be read as GS1.

    Scanners are often set to send no AIM identifier; then a GS (0x1D, the
    transmitted FNC1) or a leading ``01`` + 14 digits is the best evidence.
    """
    return "\x1d" in text or BARE_ELEMENT_STRING.match(text) is not None


def looks_like_digital_link(text: str) -> bool:
    """Whether the data is a web address, the only form a Digital Link takes."""
    return DIGITAL_LINK.match(text) is not None


def is_product_barcode(digits: str) -> bool:
    """Whether an all-digit scan is a plain GTIN (EAN-13, UPC-A, ...).

    Those identify a product, not a pack, so they are never trace codes, but
    they are the commonest wrong scan and deserve their own reason.
    """
    if len(digits) not in GTIN_LENGTHS:
        return False
    try:
        Gtin.parse(digits)
    except Exception:  # ParseError for a bad check digit; anything else alike
        return False
    return True


def parse_element_string(text: str) -> Decoded | str:
    """Parse a GS1 element string (GS-separated, as scanners send it)."""
    try:
        message = GS1Message.parse(text)
    except Exception as exc:
        return f"invalid gs1 data: {_describe(exc)}"
    return _trace_code(message.element_strings)


def parse_hri(text: str) -> Decoded | str:
    """Parse the ``(01)…(21)…`` text some scanners are configured to send."""
    try:
        message = GS1Message.parse_hri(text)
    except Exception as exc:
        return f"invalid gs1 hri text: {_describe(exc)}"
    return _trace_code(message.element_strings)


def parse_digital_link(text: str) -> Decoded | str:
    """Parse a GS1 Digital Link URI (any domain, as the standard allows)."""
    try:
        uri = GS1DigitalLinkURI.parse(text)
    except Exception as exc:
        return f"not a gs1 digital link: {_describe(exc)}"
    return _trace_code(uri.element_strings)


def _describe(exc: Exception) -> str:
    """biip's own words for a parse error; the type name for anything else."""
    if isinstance(exc, ParseError):
        return one_line(str(exc))
    return one_line(f"{type(exc).__name__}: {exc}")


def _trace_code(elements: list[GS1ElementString]) -> Decoded | str:
    """Decide whether parsed element strings form a unit trace code."""
    by_ai: dict[str, GS1ElementString] = {}
    for es in elements:
        error = es.gtin_error or es.sscc_error or es.gln_error
        if error:
            return one_line(error)
        seen = by_ai.setdefault(es.ai.ai, es)
        if seen.value != es.value:
            return f"conflicting values for ai {es.ai.ai}"

    gtin_es = by_ai.get("01")
    if gtin_es is None or gtin_es.gtin is None:
        return NO_GTIN
    serial_es = by_ai.get("21")
    if serial_es is None:
        return NO_SERIAL
    batch_es = by_ai.get("10")
    expiry_es = by_ai.get("17")

    ordered = sorted(by_ai.values(), key=lambda es: (es.ai.separator_required, es.ai.ai))
    return Decoded(
        scheme=Scheme.GS1,
        code="".join(es.as_hri() for es in ordered),
        product=gtin_es.value,
        serial=serial_es.value,
        gtin=gtin_es.value,
        batch=None if batch_es is None else batch_es.value,
        expiry=None if expiry_es is None else expiry_es.date,
    )
