"""What GS1's written forms and its one validation share: the refusal prefix, the GS byte,
the ``(ai, value)`` element, and the few words a reason is written with.

Its own module so that the forms (:mod:`._gs1_element_string`, :mod:`._gs1_hri`,
:mod:`._gs1_digital_link`) and the validation (:mod:`._gs1`) can both use it without
importing each other.
"""

from __future__ import annotations

from typing import Final

GS: Final = "\x1d"
"""The group separator a scanner transmits for FNC1."""

INVALID: Final = "malformed gs1 code: "
"""Every GS1 refusal starts with this, at intake as at the reference trace service, whose
Trace API documents ``malformed <scheme> code: …`` for a code that does not fit its scheme."""

Element = tuple[str, str]
"""One ``(ai, value)`` pair."""


def too_long(n: int, limit: int) -> str:
    """The reason for GS1 text of ``n`` characters, over its form's ``limit``."""
    return f"{INVALID}too long: {n} characters, at most {limit}"


def describe(char: str) -> str:
    """A character as a reason names it: ``space``, ``'x'`` or ``U+0007``."""
    if char == " ":
        return "space"
    if char.isprintable():
        return repr(char)
    return f"U+{ord(char):04X}"


def snippet(text: str, limit: int = 12) -> str:
    """The start of ``text`` as a reason quotes it, cut at ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "…")
