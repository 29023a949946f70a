"""GS1 trace codes: one validation for element strings, bracketed HRI and Digital Link URIs.

Every input form is first split into its ``(AI, value)`` elements, then the
same :func:`validate` judges them against GS1's Barcode Syntax Dictionary
(:mod:`._gs1_syntax`): each AI's length, character set (numeric, CSET 82, 39,
64), check digits, dates and the other linters, repeated AIs, and the
mandatory (``req=``) and exclusive (``ex=``) associations. Anything that
cannot be read *completely* is refused with a reason naming the AI and the
rule ("ai (17): 0 characters, needs 6 digits", "ai (21): space not allowed
(cset 82)", "unknown ai (1A)", "digital link: ?17= has no value"). A unit
trace code then needs a GTIN (01) and a serial number (21).

Why not biip, which this module used before: biip is lenient or wrong where a
good-read is a promise. Its HRI parser dropped a malformed or unknown trailing
AI and an AI with an empty value and accepted the rest, and deleted spaces
inside values (``(21)AB C`` became serial ``ABC``); its Digital Link parser
dropped ``?17=``; it refused AI (8010) below 5 characters though the
dictionary allows 1-30, and it refused GS1 DotCode. GS1's dictionary is the
kept source of the rules; the parsers here only split the forms.

**The stored code** is the bracketed form in a canonical order: (01) first,
then the other predefined-length AIs, then the variable-length ones, each
group by AI. For a well-made label that is the text printed under the
barcode, ``(01)…(17)…(10)…(21)…``, byte for byte what earlier versions stored.
GS1 allows ``(`` inside a value (AI 21 may be ``SN1(91)X``), so a literal
``(`` in a value is written ``\\(``, the convention of GS1's Syntax Engine for
bracketed AI data; a backslash is in none of GS1's character sets, so no value
holds one and the escape is unambiguous. Two labels with different AI values
therefore never share a stored code, and the code parses back to exactly its
AIs and values (:func:`gs1_code_problem` insists on it, for the agent and the
reference trace service alike).

**The forms** are read and written each in its own module: the element string
(:mod:`._gs1_element_string`), bracketed HRI (:mod:`._gs1_hri`) and the Digital Link
URI (:mod:`._gs1_digital_link`); they only split text into elements, and what they
share with this module (the refusal prefix, the element type) is in :mod:`._gs1_text`.

**Length bounds**: a form longer than the largest symbol can carry is refused
before any parsing (``MAX_ELEMENT_STRING``, ``MAX_HRI``, ``MAX_DIGITAL_LINK``, each in
its form's module), and every parser is one left-to-right pass, so the
cost of a scan is linear in its length and bounded.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from scanner_agent.codes._gs1_digital_link import (
    DL_STEM,
    looks_like_digital_link,
    split_digital_link,
    write_digital_link,
)
from scanner_agent.codes._gs1_element_string import split_element_string, write_element_string
from scanner_agent.codes._gs1_hri import split_hri, write_hri
from scanner_agent.codes._gs1_linters import CSET39, CSET64, CSET82, gs1_check_digit
from scanner_agent.codes._gs1_syntax import AI_TABLE, CSETS, AiEntry, Component
from scanner_agent.codes._gs1_text import INVALID, Element, describe
from scanner_agent.codes._result import Decoded, Scheme

NO_GTIN: Final = f"{INVALID}without gtin (ai 01), not a unit trace code"
NO_SERIAL: Final = f"{INVALID}without serial number (ai 21), not a unit trace code"
NOT_CANONICAL: Final = f"{INVALID}not in canonical form, expected "
PRODUCT_BARCODE: Final = "a product barcode, not a trace code"

GTIN_LENGTHS: Final = frozenset({8, 12, 13, 14})

_CSET_RE: Final = {
    "N": re.compile(r"[0-9]*+"),
    "X": re.compile(f"[{re.escape(CSET82)}]*+"),
    "Y": re.compile(f"[{re.escape(CSET39)}]*+"),
    "Z": re.compile(f"[{re.escape(CSET64)}]*+"),
}
_CSET_CHARS: Final = {"N": "0123456789", "X": CSET82, "Y": CSET39, "Z": CSET64}

_YYMMDD_AIS: Final = frozenset(
    ai
    for ai, entry in AI_TABLE.items()
    if {"yymmd0", "yymmdd"} & {name for name, _ in entry.components[0].linters}
)
"""AIs whose value starts with a YYMMDD date (11, 13, 15, 17, 7006 ...)."""


def _count(n: int) -> str:
    return f"{n} character" if n == 1 else f"{n} characters"


def _canonical_key(ai: str) -> tuple[bool, bool, str]:
    """(01) first, then predefined-length AIs, then the others, each by AI."""
    return (ai != "01", not AI_TABLE[ai].fixed, ai)


@dataclass(frozen=True, slots=True)
class Gs1Data:
    """Validated GS1 data: its elements, once each, in the canonical order.

    Built only by :func:`validate`, so every instance holds data GS1's
    dictionary accepts; the encoders write it in each input form.
    """

    elements: tuple[Element, ...]

    def value(self, ai: str) -> str | None:
        """The value of ``ai``, or None when absent."""
        for key, value in self.elements:
            if key == ai:
                return value
        return None

    def date(self, ai: str) -> dt.date | None:
        """The date a YYMMDD AI (11, 15, 17 ...) holds; day 00 is the month's last day.

        The century follows GS1's rule (General Specifications, 7.12): a year
        more than 50 years ahead of this one is in the last century, one more
        than 49 behind in the next.
        """
        value = self.value(ai) if ai in _YYMMDD_AIS else None
        if value is None:
            return None
        yy, month, day = int(value[:2]), int(value[2:4]), int(value[4:6])
        this_year = dt.date.today().year
        diff = yy - this_year % 100
        century = this_year // 100 + (-1 if diff >= 51 else 1 if diff <= -50 else 0)
        year = century * 100 + yy
        if day == 0:
            day = calendar.monthrange(year, month)[1]
        return dt.date(year, month, day)

    def bracketed(self) -> str:
        """The stored code: ``(AI)value`` in canonical order, ``(`` in a value written ``\\(``."""
        return write_hri(self.elements)

    def element_string(self) -> str:
        """The element string a scanner sends (no AIM prefix): GS after each variable-length AI."""
        return write_element_string(self.elements)

    def digital_link(self, stem: str = DL_STEM) -> str | None:
        """A GS1 Digital Link URI of this data, or None when GS1's rules allow none.

        The path holds the first primary key and the most qualifiers it can
        take; every other AI must be one allowed as a query attribute.
        """
        return write_digital_link(self.elements, stem)


# --- validation (every form) -------------------------------------------------------------


def _length_problem(entry: AiEntry, n: int) -> str | None:
    if entry.min_length <= n <= entry.max_length:
        return None
    unit = "digits" if all(c.cset == "N" for c in entry.components) else "characters"
    if entry.min_length == entry.max_length:
        return f"{_count(n)}, needs {entry.min_length} {unit}"
    if n > entry.max_length:
        return f"{_count(n)}, at most {entry.max_length}"
    return f"{_count(n)}, needs at least {entry.min_length}"


def _spec(entry: AiEntry) -> str:
    parts = []
    for c in entry.components:
        size = str(c.max_length) if c.min_length == c.max_length else f"..{c.max_length}"
        parts.append(f"[{c.cset}{size}]" if c.optional else f"{c.cset}{size}")
    return " ".join(parts)


def _cset_problem(component: Component, part: str) -> str | None:
    if component.cset == "Z":
        body = part.rstrip("=")
        pads = len(part) - len(body)
        if pads > 2 or (pads and len(part) % 3):
            return "bad padding (cset 64)"
        part = body
    if _CSET_RE[component.cset].fullmatch(part) is not None:
        return None
    allowed = _CSET_CHARS[component.cset]
    bad = next(c for c in part if c not in allowed)
    return f"{describe(bad)} not allowed ({CSETS[component.cset]})"


def _value_problem(ai: str, value: str) -> str | None:
    """What is wrong with one AI's value, or None; the reason names the AI and the rule."""
    entry = AI_TABLE[ai]
    n = len(value)
    problem = _length_problem(entry, n)
    if problem:
        return f"ai ({ai}): {problem}"
    pos = 0
    for component in entry.components:
        if pos == n and component.optional:
            break
        if component.min_length == component.max_length:
            end = pos + component.max_length
            if end > n:
                return f"ai ({ai}): {_count(n)} do not fill its parts {_spec(entry)}"
        else:
            end = n
        part = value[pos:end]
        problem = _cset_problem(component, part)
        if problem:
            return f"ai ({ai}): {problem}"
        for name, check in component.linters:
            problem = check(part)
            if problem:
                return f"ai ({ai}): {problem} ({name})"
        pos = end
    if pos != n:  # pragma: no cover - the length check covers it
        return f"ai ({ai}): {_count(n)} do not fit its parts {_spec(entry)}"
    return None


def _masks(ais: Iterable[str]) -> dict[str, int]:
    """How many AIs each pattern matches (``3103`` counts for ``3103``, ``310n`` and ``31nn``)."""
    masks: dict[str, int] = {}
    get = masks.get
    for ai in ais:
        masks[ai] = get(ai, 0) + 1
        for k in range(1, len(ai) - 1):
            mask = ai[:-k] + "n" * k
            masks[mask] = get(mask, 0) + 1
    return masks


def _matches(ai: str, pattern: str) -> bool:
    stem = pattern.rstrip("n")
    return len(ai) == len(pattern) and ai.startswith(stem)


def _alternatives(alternatives: tuple[tuple[str, ...], ...]) -> str:
    names = ["+".join(f"({p})" for p in group) for group in alternatives]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


DIGSIG_SERIALISED: Final = {"253": 13, "255": 13, "8003": 14}
"""Keys a digital signature (AI 8030) needs in serialised form, with the length they have
without their serial part: a rule of the GS1 General Specifications that GS1's Syntax Engine
checks beside the dictionary, which cannot express it."""


def _association_problem(ais: list[str], values: dict[str, str]) -> str | None:
    """The first ``req=`` or ``ex=`` association the AIs break, in canonical order."""
    masks = _masks(ais)
    count = masks.get
    if "8030" in values:
        for ai, bare in DIGSIG_SERIALISED.items():
            if len(values.get(ai, "x" * (bare + 1))) <= bare:
                return f"ai (8030) needs ai ({ai}) with its serial part"
    for ai in ais:
        entry = AI_TABLE[ai]
        for alternatives in entry.req:
            if not any(all(count(p) for p in group) for group in alternatives):
                return f"ai ({ai}) needs {_alternatives(alternatives)} with it (req)"
        for pattern in entry.ex:
            n = count(pattern, 0)
            if n and n - _matches(ai, pattern) > 0:
                other = next(a for a in ais if a != ai and _matches(a, pattern))
                return f"ai ({ai}) cannot be with ({other}) (ex)"
    return None


def validate(elements: Iterable[Element]) -> Gs1Data | str:
    """Judge split elements by GS1's dictionary: the data, or the reason it is refused.

    The AIs are known (the splitters refuse unknown ones). A repeated AI must
    repeat its value; values are then checked in canonical order, so the same
    data gets the same reason whatever form or order it came in.
    """
    values: dict[str, str] = {}
    for ai, value in elements:
        seen = values.setdefault(ai, value)
        if seen != value:
            return f"{INVALID}conflicting values for ai ({ai})"
    if not values:
        return f"{INVALID}no ai"
    ordered = sorted(values, key=_canonical_key)
    for ai in ordered:
        problem = _value_problem(ai, values[ai])
        if problem:
            return INVALID + problem
    problem = _association_problem(ordered, values)
    if problem:
        return INVALID + problem
    return Gs1Data(tuple((ai, values[ai]) for ai in ordered))


# --- trace codes ---------------------------------------------------------------------------


def _trace_code(outcome: list[Element] | str) -> Decoded | str:
    """Validate split elements and decide whether they form a unit trace code."""
    if isinstance(outcome, str):
        return outcome
    data = validate(outcome)
    if isinstance(data, str):
        return data
    gtin = data.value("01")
    if gtin is None:
        return NO_GTIN
    serial = data.value("21")
    if serial is None:
        return NO_SERIAL
    return Decoded(
        scheme=Scheme.GS1,
        code=data.bracketed(),
        product=gtin,
        serial=serial,
        gtin=gtin,
        batch=data.value("10"),
        expiry=data.date("17"),
    )


def parse_element_string(text: str) -> Decoded | str:
    """A GS1 element string (GS-separated, as scanners send it) as a trace code, or the reason."""
    return _trace_code(split_element_string(text))


def parse_hri(text: str) -> Decoded | str:
    """Bracketed ``(01)…(21)…`` text (as some scanners send it) as a trace code, or the reason."""
    return _trace_code(split_hri(text))


def parse_digital_link(text: str) -> Decoded | str:
    """A GS1 Digital Link URI (any domain, as the standard allows) as a trace code, or the reason."""
    return _trace_code(split_digital_link(text))


def parse_gs1(text: str) -> Gs1Data | str:
    """Any GS1 form (``(``: bracketed, ``http``: Digital Link, else an element string) as data."""
    if text.startswith("("):
        outcome = split_hri(text)
    elif looks_like_digital_link(text):
        outcome = split_digital_link(text)
    else:
        outcome = split_element_string(text)
    return outcome if isinstance(outcome, str) else validate(outcome)


def gs1_code_problem(code: str) -> str | None:
    """Why ``code`` is not a stored GS1 trace code, or None: the rule the agent and its service share.

    A stored code is the canonical bracketed form of valid GS1 data with a
    GTIN and a serial number. What the agent ACKs always passes; what this
    refuses the agent refuses at intake with the same reason (except a code
    merely not in canonical order, which the agent writes canonically).
    """
    outcome = parse_hri(code)
    if isinstance(outcome, str):
        return outcome
    if outcome.code != code:
        expected = outcome.code if len(outcome.code) <= 80 else outcome.code[:77] + "..."
        return NOT_CANONICAL + expected
    return None


# --- classification helpers for the parser ---------------------------------------------------


def is_product_barcode(digits: str) -> bool:
    """Whether an all-digit scan is a plain GTIN (EAN-13, UPC-A, ...) with a good check digit.

    Those identify a product, not a pack, so they are never trace codes, but
    they are the commonest wrong scan and deserve their own reason.
    """
    return len(digits) in GTIN_LENGTHS and gs1_check_digit(digits[:-1]) == digits[-1]
