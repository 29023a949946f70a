"""The result type every scan turns into, valid or not.

A scan is never an exception: the agent has to show *something* on the
bad-read display and send a ``NAK <code> <reason>`` line, so a failed parse is
an ordinary value with a reason, and a good one carries the identity we store.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import NamedTuple


class Scheme(enum.StrEnum):
    """The trace-code families the agent accepts.

    A ``StrEnum`` so that it serialises as its plain value (``"cn20"``) in
    JSON, log lines and the outbox without a custom encoder.
    """

    CN20 = "cn20"
    """20-digit Chinese drug trace code (码上放心 / 药品电子监管码)."""

    GS1 = "gs1"
    """GS1 element string or GS1 Digital Link URI with GTIN (01) and serial (21)."""

    MA = "ma"
    """MA / IDcode string issued under ISO/IEC 15459 issuing agency code "MA"."""


class ScanResult(NamedTuple):
    """What one scan turned out to be.

    Immutable: results are created per scan, passed between the reader, the
    outbox and the display, and must not change on the way.  A named tuple
    rather than a frozen dataclass because one is built for every scan on the
    intake's hot path, and a frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field) costs about four times as much.
    ``valid`` is ``False`` exactly when ``reason`` is set; ``scheme`` and
    ``code`` are only set for valid trace codes, so a consumer can never store
    an identity for a rejected scan by mistake.
    """

    raw: str
    """The input as text (bytes decoded: UTF-8, else GB18030, else latin-1)."""
    text: str
    """``raw`` without the AIM symbology identifier and surrounding whitespace."""
    symbology: str | None
    """The AIM symbology identifier that was stripped (``"]d2"``), if any."""
    scheme: Scheme | None
    """The trace-code scheme, or ``None`` when not a recognised trace code."""
    valid: bool
    """Whether this is a well-formed unit trace code."""
    reason: str | None
    """Short lowercase reason when invalid (one line), ``None`` when valid."""
    code: str | None = None
    """Canonical identity to store and report; ``None`` when invalid."""
    product: str | None = None
    """cn20: digits 1-7; gs1: the GTIN; ma: the product part when identifiable."""
    serial: str | None = None
    """cn20: digits 8-16; gs1: AI 21; ma: the serial data unit when present."""
    gtin: str | None = None
    """The GTIN (AI 01), gs1 only."""
    batch: str | None = None
    """Batch/lot: gs1 AI 10; ma: the ``L`` data unit when present."""
    expiry: dt.date | None = None
    """Expiry date (gs1 AI 17; a day of 00 means the last day of the month)."""

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready mapping (the date as ISO ``YYYY-MM-DD``).

        ``text`` is left out on purpose: it is derivable from ``raw`` and
        ``symbology`` and would double the size of every stored record.
        """
        return {
            "raw": self.raw,
            "scheme": None if self.scheme is None else str(self.scheme),
            "valid": self.valid,
            "reason": self.reason,
            "symbology": self.symbology,
            "code": self.code,
            "product": self.product,
            "serial": self.serial,
            "gtin": self.gtin,
            "batch": self.batch,
            "expiry": None if self.expiry is None else self.expiry.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Decoded:
    """What a scheme parser found in a valid trace code (internal).

    Scheme parsers return this or a reason string; only
    :func:`~scanner_agent.codes.parse_scan` builds the public result, so the
    ``valid``/``reason`` invariant is enforced in one place.
    """

    scheme: Scheme
    code: str
    product: str | None = None
    serial: str | None = None
    gtin: str | None = None
    batch: str | None = None
    expiry: dt.date | None = None


MAX_REASON = 160
"""Reasons go on a one-line display and into a NAK line: keep them short."""


def one_line(message: str) -> str:
    """Make a message (an exception's text) fit a reason: one line, short, lowercase start.

    Such messages are kept verbatim otherwise, so an operator
    can search for them; only the first letter is lowered to match our own
    reasons, and control characters (a scanned GS, a newline) become spaces.
    """
    text = " ".join("".join(c if c.isprintable() else " " for c in message).split())
    text = text.rstrip(".")
    if len(text) > MAX_REASON:
        text = text[: MAX_REASON - 3].rstrip() + "..."
    return text[:1].lower() + text[1:]
