"""Splitting the AIM symbology identifier off a scan.

Scanners configured to send an AIM identifier (ISO/IEC 15424) prefix every
read with ``]`` + a symbology character + modifier(s), e.g. ``]d2`` for GS1
DataMatrix or ``]C1`` for GS1-128. It tells us whether the data is a GS1
message, which matters: a GS1 element string has no other marker. We let
biip's :class:`~biip.symbology.SymbologyIdentifier` do the table look-up and
keep the identifier so it can be stored with the scan.
"""

from __future__ import annotations

from typing import NamedTuple

from biip.symbology import GS1Symbology, ISOSymbology, SymbologyIdentifier

GS1_MESSAGE_SYMBOLOGIES = frozenset(GS1Symbology.with_gs1_messages())
"""Symbologies whose data is a GS1 element string by definition (]C1, ]e0, ]d2, ]Q3, ]J1)."""


class Split(NamedTuple):
    """A scan with its AIM identifier taken off."""

    symbology: str | None
    """The identifier as sent (``"]d2"``), or ``None`` if there was none."""
    gs1: bool
    """Whether the identifier declares GS1 data."""
    payload: str
    """The data after the identifier, surrounding whitespace stripped."""


def split_symbology(text: str) -> Split:
    """Take a leading AIM identifier off ``text`` (already stripped).

    A ``]`` that does not start a well-formed identifier (unknown symbology
    character, missing or non-alphanumeric modifier, the ``]Y`` system
    expansion) is left in the data: we would rather reject the scan with the
    data intact than guess.
    """
    if not text.startswith("]"):
        return Split(None, False, text)
    try:
        si = SymbologyIdentifier.extract(text)
    except Exception:  # biip raises ParseError, IndexError or ValueError on junk
        return Split(None, False, text)
    if si.iso_symbology is ISOSymbology.SYSTEM_EXPANSION:
        # ]Y carries a variable number of modifiers and no barcode of ours.
        return Split(None, False, text)
    modifiers = si.modifiers
    if len(modifiers) != 1 or not (modifiers.isascii() and modifiers.isalnum()):
        return Split(None, False, text)
    if not text.startswith(si.value):  # pragma: no cover - defensive
        return Split(None, False, text)
    gs1 = si.gs1_symbology in GS1_MESSAGE_SYMBOLOGIES
    return Split(si.value, gs1, text[len(si.value) :].strip())
