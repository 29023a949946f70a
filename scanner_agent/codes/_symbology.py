"""Splitting the AIM symbology identifier off a scan.

Scanners configured to send an AIM identifier (ISO/IEC 15424) prefix every
read with ``]`` + a symbology character + a modifier, e.g. ``]d2`` for GS1
DataMatrix or ``]C1`` for GS1-128. It tells us whether the data is a GS1
message, which matters: a GS1 element string has no other marker. We keep the
identifier so it can be stored with the scan.

The table is ours, not biip's: biip 5.2 lists ``]J1`` (GS1 DotCode) among the
GS1 carriers but has no ``J`` among its symbology characters, so every DotCode
read was refused. ISO/IEC 15424 assigns ``J`` to DotCode (``]J0`` plain data,
``]J1`` a GS1 element string), and GS1's Syntax Engine reads ``]J1`` like the
other GS1 carriers.
"""

from __future__ import annotations

from typing import Final, NamedTuple

SYMBOLOGY_CHARACTERS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUXZcdeopsz")
"""ISO/IEC 15424 symbology characters: A Code 39, C Code 128, d Data Matrix, e GS1 DataBar,
E EAN/UPC, J DotCode, Q QR Code, ... (``Y``, the system expansion, is left out on purpose)."""

GS1_MESSAGE_SYMBOLOGIES: Final = frozenset({"]C1", "]e0", "]d2", "]Q3", "]J1"})
"""Identifiers whose data is a GS1 element string by definition: GS1-128, GS1 DataBar,
GS1 DataMatrix, GS1 QR Code and GS1 DotCode."""


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
    if len(text) < 3 or text[0] != "]" or text[1] not in SYMBOLOGY_CHARACTERS:
        return Split(None, False, text)
    modifier = text[2]
    if not (modifier.isascii() and modifier.isalnum()):
        return Split(None, False, text)
    symbology = text[:3]
    return Split(symbology, symbology in GS1_MESSAGE_SYMBOLOGIES, text[3:].strip())
