"""The GS1 element string, as a scanner sends it: ``01…17…10…<GS>21…``.

A predefined-length AI takes its length; any other runs to the next GS (the transmitted
FNC1) or the end.  Splitting only reads the form; :func:`scanner_agent.codes._gs1.validate`
judges what it read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from scanner_agent.codes._gs1_syntax import AI_TABLE
from scanner_agent.codes._gs1_text import GS, INVALID, Element, snippet, too_long

MAX_ELEMENT_STRING: Final = 3116
"""Longest element string: a GS1 DataMatrix holds at most 3,116 digits (144x144 modules;
2,335 alphanumerics), the densest GS1 carrier a medicine pack bears."""

BARE_ELEMENT_STRING = re.compile(r"01\d{14}")
"""A bare scan starting with AI 01 and a full GTIN is taken to be GS1 data."""


def looks_like_element_string(text: str) -> bool:
    """Whether data without a GS1 symbology identifier should be read as GS1.

    Scanners are often set to send no AIM identifier; then a GS (0x1D, the
    transmitted FNC1) or a leading ``01`` + 14 digits is the best evidence.
    """
    return GS in text or BARE_ELEMENT_STRING.match(text) is not None


def _ai_at(text: str, pos: int) -> str | None:
    for size in (2, 3, 4):
        ai = text[pos : pos + size]
        if len(ai) == size and ai in AI_TABLE:
            return ai
    return None


def split_element_string(text: str) -> list[Element] | str:
    """The elements of an element string (GS-separated, as scanners send it), or the reason.

    A predefined-length AI takes its length; any other runs to the next GS
    or the end. One GS may lead (a transmitted FNC1 in first position), and
    one may follow a predefined-length value or end the data.
    """
    n = len(text)
    if n > MAX_ELEMENT_STRING:
        return too_long(n, MAX_ELEMENT_STRING)
    pos = 1 if text.startswith(GS) else 0
    elements: list[Element] = []
    while pos < n:
        ai = _ai_at(text, pos)
        if ai is None:
            head = text[pos : pos + 4]
            digits = len(head) - len(head.lstrip("0123456789"))
            if text[pos] == GS:
                return f"{INVALID}empty element (two separators in a row)"
            if digits >= 2:
                return f"{INVALID}unknown ai ({head[:digits]})"
            return f"{INVALID}expected an ai, found {snippet(text[pos:])}"
        start = pos + len(ai)
        entry = AI_TABLE[ai]
        if entry.fixed:
            end = min(start + entry.max_length, n)
            gs = text.find(GS, start, end)
            end = end if gs == -1 else gs
        else:
            gs = text.find(GS, start)
            end = n if gs == -1 else gs
        elements.append((ai, text[start:end]))
        pos = end + 1 if end < n and text[end] == GS else end
    if not elements:
        return f"{INVALID}no ai"
    return elements


def write_element_string(elements: Sequence[Element]) -> str:
    """The element string of valid elements (no AIM prefix): GS after each variable-length AI."""
    parts = []
    last = len(elements) - 1
    for index, (ai, value) in enumerate(elements):
        parts.append(ai + value)
        if index < last and not AI_TABLE[ai].fixed:
            parts.append(GS)
    return "".join(parts)
