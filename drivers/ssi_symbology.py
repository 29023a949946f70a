"""The SSI bar code type byte as an AIM symbology identifier (pure).

A Zebra decoder in SSI mode sends every bar code in DECODE_DATA packets whose
first data byte is the *bar code type* (the SSI guide's code-type table), not
an AIM identifier (ISO/IEC 15424).  The parser learns from the AIM identifier
whether data is a GS1 message (``]d2`` GS1 DataMatrix, ``]C1`` GS1-128 ...),
so an SSI scan is given the identifier a scanner sending AIM prefixes would
have put in front of the same read.  Only types whose identifier, modifier
included, follows from the type alone are mapped; the rest stay unmapped
(:func:`aim_identifier` returns ``None``) and their data reaches the parser as
it was decoded, as before.

Sources:

* Code-type values: Zebra's Scanner SDK for Windows, ``SampleApp_CPP/sampledef.h``
  ("Symbology Types", ©2020 Zebra Technologies; repository
  zebra-technologies/Scanner-SDK-for-Windows), the same numbering the SSI
  Programmer's Guide 72E-40451 gives for the DECODE_DATA "Bar Code Type" field
  (the SE-923 integration guide's SSI chapter points that field to its code-type
  table); cross-checked for the shared entries against enioka_scan's SSI host
  (``SsiSymbologyTranslator``: "Codes are the SSI ID, found in the SSI Manual in
  the DECODE_DATA packet section": 0x0B EAN-13, 0x0F GS1-128, 0x1B Data Matrix,
  0x1C QR, 0x30-0x32 GS1 DataBar).
* Modifiers: the "AIM Code Identifiers / Modifier Characters" tables of Zebra's
  product reference guides (DS6708 PRG table B-3, DS9208 PRG table E-3, DS3678
  PRG table E-3): UPC/EAN 0 = 13-digit EAN packet, 4 = EAN-8 packet; GS1 DataBar
  family "always transmit 0"; Data Matrix 1 = ECC 200, 2 = ECC 200 with FNC1 in
  first position, 4-6 = with ECI; QR Code 1 = Model 2, ECI not implemented;
  GS1 QR 3 = FNC1 implied in first position.

Left unmapped, because the type does not fix the modifier: Code 128 (``]C0``,
or ``]C2`` with FNC1 in second position), Code 39, Interleaved 2 of 5 and
Codabar (check-digit options), UPC-A/UPC-E (``]E0`` stands for a 13-digit
packet, the scanner sends 12 or 8 digits), PDF417, Aztec, MaxiCode and the
composites (reader settings or symbol options), and every type not listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

AIM_PREFIX: Final = re.compile(rb"\][A-Za-z][0-9A-Za-z]")
"""The start of data that already carries an AIM identifier (the scanner was set
to send one as prefix, which SSI then delivers as part of the decode data)."""
ECI_ESCAPE: Final = 0x5C
"""Backslash: the ECI escape character in data sent with the ECI protocol."""


@dataclass(frozen=True, slots=True)
class CodeType:
    """One SSI bar code type and the AIM identifier it stands for."""

    name: str
    aim: bytes
    eci_free: bool = False
    """The modifier assumes a symbol without ECI: data holding an ECI escape
    (a backslash) is left unmapped, since ``]d4``/``]Q2`` would then be right."""


CODE_TYPES: Final[dict[int, CodeType]] = {
    0x0A: CodeType("EAN-8", b"]E4"),
    0x0B: CodeType("EAN-13", b"]E0"),
    0x0F: CodeType("GS1-128", b"]C1"),
    0x1B: CodeType("Data Matrix", b"]d1", eci_free=True),
    0x1C: CodeType("QR Code", b"]Q1", eci_free=True),
    0x30: CodeType("GS1 DataBar-14", b"]e0"),
    0x31: CodeType("GS1 DataBar Limited", b"]e0"),
    0x32: CodeType("GS1 DataBar Expanded", b"]e0"),
    0xC1: CodeType("GS1 Data Matrix", b"]d2"),
    0xC2: CodeType("GS1 QR", b"]Q3"),
}
"""SSI bar code types with a confirmed AIM identifier (see the module docstring)."""


def aim_identifier(barcode_type: int, data: bytes) -> bytes | None:
    """The AIM identifier for one decode, or ``None`` when it cannot be told.

    >>> aim_identifier(0xC1, b"0106901234567892")
    b']d2'
    >>> aim_identifier(0x03, b"ABC") is None   # Code 128: ]C0 or ]C2
    True
    """
    code_type = CODE_TYPES.get(barcode_type)
    if code_type is None:
        return None
    if code_type.eci_free and ECI_ESCAPE in data:
        return None
    return code_type.aim


def with_aim(barcode_type: int, data: bytes) -> bytes:
    """``data`` with its AIM identifier in front, when known and not already there.

    >>> with_aim(0x0F, b"0106901234567892")
    b']C10106901234567892'
    >>> with_aim(0x0F, b"]C10106901234567892")   # the scanner sent it itself
    b']C10106901234567892'
    """
    if AIM_PREFIX.match(data):
        return data
    aim = aim_identifier(barcode_type, data)
    return aim + data if aim is not None else data
