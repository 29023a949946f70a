"""The 20-digit Chinese drug trace code (码上放心 / 药品电子监管码).

Layout, digits counted from 1:

* 1-7   drug identification code (the product; the leading ``8`` is the
  scheme's fixed first digit and part of it),
* 8-16  the unit's serial number,
* 17-20 check digits.

The check digits are computed by the trace platform with an algorithm that is
not published, so offline we can only check the format: exactly 20 ASCII
digits starting with 8. That check is a string test, so this module must stay
free of the GS1 dictionary and anything slow: most scans in a Chinese pharmacy are cn20
codes and go through here first.
"""

from __future__ import annotations

from scanner_agent.codes._result import Decoded, Scheme

CN20_LENGTH = 20
CN20_FIRST_DIGIT = "8"


def is_cn20(text: str) -> bool:
    """Whether ``text`` has the cn20 format (``isdigit`` alone accepts ``"²"``)."""
    return (
        len(text) == CN20_LENGTH
        and text[0] == CN20_FIRST_DIGIT
        and text.isascii()
        and text.isdigit()
    )


def decode_cn20(text: str) -> Decoded:
    """Slice a code already accepted by :func:`is_cn20` into its parts."""
    return Decoded(scheme=Scheme.CN20, code=text, product=text[:7], serial=text[7:16])


def reject_digits(digits: str) -> str | None:
    """Explain why an all-digit string close to cn20 is not one, if it is close.

    Returns ``None`` when the digits do not look like a cn20 attempt at all,
    so the caller can try other explanations (a product barcode, GS1).
    """
    n = len(digits)
    if n == CN20_LENGTH and digits[0] != CN20_FIRST_DIGIT:
        return "20 digits not starting with 8: not a drug trace code"
    if digits[0] == CN20_FIRST_DIGIT and n != CN20_LENGTH:
        return f"drug trace code must be 20 digits, got {n}"
    return None
