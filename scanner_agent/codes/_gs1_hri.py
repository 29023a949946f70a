"""Bracketed GS1 text, the human-readable interpretation: ``(01)…(17)…(10)…(21)…``.

It is also the form the agent stores (:meth:`scanner_agent.codes.Gs1Data.bracketed`).
GS1 allows ``(`` inside a value, so a literal ``(`` in a value is written ``\\(`` (the
convention of GS1's Syntax Engine for bracketed AI data).  Splitting only reads the form;
:func:`scanner_agent.codes._gs1.validate` judges what it read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from scanner_agent.codes._gs1_element_string import MAX_ELEMENT_STRING
from scanner_agent.codes._gs1_syntax import AI_TABLE
from scanner_agent.codes._gs1_text import INVALID, Element, snippet, too_long

MAX_HRI: Final = MAX_ELEMENT_STRING * 3 // 2
"""Longest bracketed HRI text: the longest element string with every AI in brackets
(a 2-digit AI with a 2-character value grows from 4 to 6 characters)."""


def split_hri(text: str) -> list[Element] | str:
    """The elements of bracketed text ``(01)…(21)…``, or the reason.

    A value runs to the next ``(`` that is not written ``\\(``; ``\\(`` in a
    value stands for ``(``.
    """
    n = len(text)
    if n > MAX_HRI:
        return too_long(n, MAX_HRI)
    if not text.startswith("("):
        if text[:1].isspace():
            return f"{INVALID}space before the first ai"
        return f"{INVALID}expected '(' at the start, found {snippet(text)}"
    elements: list[Element] = []
    pos = 0
    while pos < n:
        close = text.find(")", pos + 1, pos + 10)
        if close == -1:
            return f"{INVALID}no ')' closes {snippet(text[pos:], 6)}"
        ai = text[pos + 1 : close]
        if not ai:
            return f"{INVALID}empty ai ()"
        if ai not in AI_TABLE:
            return f"{INVALID}unknown ai ({ai})"
        start = close + 1
        nxt = text.find("(", start)
        while nxt != -1 and text[nxt - 1] == "\\":
            nxt = text.find("(", nxt + 1)
        end = n if nxt == -1 else nxt
        value = text[start:end]
        if "\\(" in value:
            value = value.replace("\\(", "(")
        elements.append((ai, value))
        pos = end
    return elements


def _escape(value: str) -> str:
    """``(`` as ``\\(``, so that it cannot be taken for the start of the next AI."""
    return value.replace("(", "\\(") if "(" in value else value


def write_hri(elements: Iterable[Element]) -> str:
    """``(AI)value`` for each element in the order given, ``(`` in a value written ``\\(``."""
    return "".join(f"({ai}){_escape(value)}" for ai, value in elements)
