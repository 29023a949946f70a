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

**Length bounds**: a form longer than the largest symbol can carry is refused
before any parsing (:data:`MAX_ELEMENT_STRING`, :data:`MAX_HRI`,
:data:`MAX_DIGITAL_LINK`), and every parser is one left-to-right pass, so the
cost of a scan is linear in its length and bounded.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_to_bytes

from scanner_agent.codes._gs1_linters import CSET39, CSET64, CSET82, gs1_check_digit
from scanner_agent.codes._gs1_syntax import AI_TABLE, CSETS, AiEntry, Component
from scanner_agent.codes._result import Decoded, Scheme

GS: Final = "\x1d"
"""The group separator a scanner transmits for FNC1."""

MAX_ELEMENT_STRING: Final = 3116
"""Longest element string: a GS1 DataMatrix holds at most 3,116 digits (144x144 modules;
2,335 alphanumerics), the densest GS1 carrier a medicine pack bears."""
MAX_HRI: Final = MAX_ELEMENT_STRING * 3 // 2
"""Longest bracketed HRI text: the longest element string with every AI in brackets
(a 2-digit AI with a 2-character value grows from 4 to 6 characters)."""
MAX_DIGITAL_LINK: Final = 2953
"""Longest GS1 Digital Link URI: a QR Code (version 40-L) holds at most 2,953 bytes."""

INVALID: Final = "malformed gs1 code: "
"""Every GS1 refusal starts with this, at intake as at the reference trace service, whose
Trace API documents ``malformed <scheme> code: …`` for a code that does not fit its scheme."""
NO_GTIN: Final = f"{INVALID}without gtin (ai 01), not a unit trace code"
NO_SERIAL: Final = f"{INVALID}without serial number (ai 21), not a unit trace code"
NOT_CANONICAL: Final = f"{INVALID}not in canonical form, expected "
PRODUCT_BARCODE: Final = "a product barcode, not a trace code"

GTIN_LENGTHS: Final = frozenset({8, 12, 13, 14})
DL_STEM: Final = "https://id.gs1.org"
"""The canonical Digital Link domain; any domain is accepted on input."""

BARE_ELEMENT_STRING = re.compile(r"01\d{14}")
"""A bare scan starting with AI 01 and a full GTIN is taken to be GS1 data."""
DIGITAL_LINK = re.compile(r"https?://", re.IGNORECASE)
_SCHEME = re.compile(r"(?:https?|HTTPS?)://")

_CSET_RE: Final = {
    "N": re.compile(r"[0-9]*+"),
    "X": re.compile(f"[{re.escape(CSET82)}]*+"),
    "Y": re.compile(f"[{re.escape(CSET39)}]*+"),
    "Z": re.compile(f"[{re.escape(CSET64)}]*+"),
}
_CSET_CHARS: Final = {"N": "0123456789", "X": CSET82, "Y": CSET39, "Z": CSET64}

_URI_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"
)
"""Characters a URI may hold (RFC 3986), as GS1's Syntax Engine checks them."""
_BAD_DOMAIN_CHARS: Final = frozenset("_~?#@!$&'()*+,;=%")
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")

Element = tuple[str, str]
"""One ``(ai, value)`` pair."""

_YYMMDD_AIS: Final = frozenset(
    ai
    for ai, entry in AI_TABLE.items()
    if {"yymmd0", "yymmdd"} & {name for name, _ in entry.components[0].linters}
)
"""AIs whose value starts with a YYMMDD date (11, 13, 15, 17, 7006 ...)."""


def too_long(n: int, limit: int) -> str:
    """The reason for GS1 text of ``n`` characters, over its form's ``limit``."""
    return f"{INVALID}too long: {n} characters, at most {limit}"


def _describe(char: str) -> str:
    if char == " ":
        return "space"
    if char.isprintable():
        return repr(char)
    return f"U+{ord(char):04X}"


def _snippet(text: str, limit: int = 12) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


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
        return "".join(f"({ai}){_escape(value)}" for ai, value in self.elements)

    def element_string(self) -> str:
        """The element string a scanner sends (no AIM prefix): GS after each variable-length AI."""
        parts = []
        last = len(self.elements) - 1
        for index, (ai, value) in enumerate(self.elements):
            parts.append(ai + value)
            if index < last and not AI_TABLE[ai].fixed:
                parts.append(GS)
        return "".join(parts)

    def digital_link(self, stem: str = DL_STEM) -> str | None:
        """A GS1 Digital Link URI of this data, or None when GS1's rules allow none.

        The path holds the first primary key and the most qualifiers it can
        take; every other AI must be one allowed as a query attribute.
        """
        present = {ai for ai, _ in self.elements}
        key = next((ai for ai, _ in self.elements if AI_TABLE[ai].dl_sequences), None)
        if key is None:
            return None
        path = max(
            (seq for seq in AI_TABLE[key].dl_sequences if present.issuperset(seq)),
            key=lambda seq: (len(seq), seq),
        )
        values = dict(self.elements)
        out = [stem.rstrip("/")]
        out.extend(f"/{ai}/{_uri_escape(values[ai], query=False)}" for ai in path)
        query = []
        for want_fixed in (True, False):
            for ai, value in self.elements:
                entry = AI_TABLE[ai]
                if ai in path or entry.fixed is not want_fixed:
                    continue
                if not entry.dl_attribute:
                    return None
                query.append(f"{ai}={_uri_escape(value, query=True)}")
        if query:
            out.append("?" + "&".join(query))
        return "".join(out)


def _escape(value: str) -> str:
    """``(`` as ``\\(``, so that it cannot be taken for the start of the next AI."""
    return value.replace("(", "\\(") if "(" in value else value


def _uri_escape(value: str, *, query: bool) -> str:
    out = []
    for char in value:
        if char in _UNRESERVED:
            out.append(char)
        elif char == " " and query:
            out.append("+")
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(out)


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
    return f"{_describe(bad)} not allowed ({CSETS[component.cset]})"


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


# --- the forms -----------------------------------------------------------------------------


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
            return f"{INVALID}expected an ai, found {_snippet(text[pos:])}"
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
        return f"{INVALID}expected '(' at the start, found {_snippet(text)}"
    elements: list[Element] = []
    pos = 0
    while pos < n:
        close = text.find(")", pos + 1, pos + 10)
        if close == -1:
            return f"{INVALID}no ')' closes {_snippet(text[pos:], 6)}"
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


def _uri_unescape(raw: str, ai: str, *, query: bool) -> str:
    """Percent-decode a Digital Link value (``+`` is a space in the query); raises ValueError."""
    if query and "+" in raw:
        raw = raw.replace("+", " ")
    if "%" not in raw:
        return raw
    bad = _BAD_ESCAPE.search(raw)
    if bad:
        msg = f"ai ({ai}): bad percent-escape {raw[bad.start() : bad.start() + 3]!r}"
        raise ValueError(msg)
    try:
        value = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        msg = f"ai ({ai}): percent-escapes are not utf-8"
        raise ValueError(msg) from None
    if "\x00" in value:
        msg = f"ai ({ai}): a percent-escaped NUL"
        raise ValueError(msg)
    return value


def _dl_root(segments: list[str]) -> int | str:
    """Where the AI pairs of a Digital Link path start: the rightmost primary key whose
    tail is all ``AI/value`` pairs (what precedes it is the stem); or the reason."""
    keys = [i for i, s in enumerate(segments) if s in AI_TABLE and AI_TABLE[s].dl_sequences]
    if not keys:
        return "digital link has no gs1 primary key in its path"
    for i in reversed(keys):
        tail = segments[i:]
        if len(tail) % 2 == 0 and all(tail[j] in AI_TABLE for j in range(0, len(tail), 2)):
            return i
    tail = segments[keys[-1] :]
    for j in range(0, len(tail), 2):
        if tail[j] not in AI_TABLE or j + 1 == len(tail):
            after = f"/{tail[j - 2]}/{tail[j - 1]}" if j else ""
            if tail[j] in AI_TABLE:
                return f"digital link: /{tail[j]}/ has no value"
            if not tail[j]:
                return f"digital link: trailing '/' after {after}"
            return f"digital link: trailing data {_snippet(tail[j])} after {after}"
    return "digital link has no gs1 primary key in its path"  # pragma: no cover


def split_digital_link(text: str) -> list[Element] | str:
    """The elements of a GS1 Digital Link URI, by GS1's rules, or the reason.

    The path ends in a primary key and its qualifiers in the order the
    dictionary gives (``dlpkey``); numeric query parameters are AIs allowed
    as attributes (flag ``?``), each once, never empty, none that belongs in
    the path. Other query parameters and a fragment carry no GS1 data and are
    ignored, as the Digital Link standard says.
    """
    n = len(text)
    if n > MAX_DIGITAL_LINK:
        return too_long(n, MAX_DIGITAL_LINK)
    scheme = _SCHEME.match(text)
    if scheme is None:
        return f"{INVALID}digital link must start with http:// or https://"
    rest = text[scheme.end() :].partition("#")[0]
    before_query, _, query = rest.partition("?")
    domain, slash, path = before_query.partition("/")
    if not domain or not slash:
        return f"{INVALID}digital link has no domain and path"
    for char in before_query:
        if char not in _URI_CHARS:
            return f"{INVALID}digital link: {_describe(char)} not allowed in a uri"
    for char in domain:
        if char in _BAD_DOMAIN_CHARS:
            return f"{INVALID}digital link: {_describe(char)} not allowed in the domain"
    segments = path.split("/")
    root = _dl_root(segments)
    if isinstance(root, str):
        return INVALID + root
    elements: list[Element] = []
    try:
        for j in range(root, len(segments), 2):
            ai, raw = segments[j], segments[j + 1]
            if not raw:
                return f"{INVALID}digital link: /{ai}/ has no value"
            elements.append((ai, _uri_unescape(raw, ai, query=False)))
        path_ais = tuple(ai for ai, _ in elements)
        key = AI_TABLE[path_ais[0]]
        if path_ais not in key.dl_sequences:
            shown = "/".join(path_ais)
            return f"{INVALID}digital link: path {shown} is not a key with its qualifiers in order (dlpkey)"
        seen = set(path_ais)
        for param in query.split("&") if query else ():
            name, eq, raw = param.partition("=")
            if not (name.isdigit() and name.isascii()):
                continue  # not an AI: no GS1 data
            if not raw:
                return f"{INVALID}digital link: ?{name}{eq} has no value"
            if name not in AI_TABLE:
                return f"{INVALID}digital link: unknown ai ({name}) in the query"
            if not AI_TABLE[name].dl_attribute:
                return f"{INVALID}digital link: ai ({name}) is not allowed in the query"
            if name in seen:
                return f"{INVALID}digital link: ai ({name}) given twice"
            for char in raw:
                if char not in _URI_CHARS:
                    return f"{INVALID}digital link: {_describe(char)} not allowed in a uri"
            for j in range(1, len(path_ais) + 1):
                if (*path_ais[:j], name, *path_ais[j:]) in key.dl_sequences:
                    return f"{INVALID}digital link: ai ({name}) belongs in the path"
            seen.add(name)
            elements.append((name, _uri_unescape(raw, name, query=True)))
    except ValueError as exc:
        return f"{INVALID}digital link: {exc}"
    return elements


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


def looks_like_element_string(text: str) -> bool:
    """Whether data without a GS1 symbology identifier should be read as GS1.

    Scanners are often set to send no AIM identifier; then a GS (0x1D, the
    transmitted FNC1) or a leading ``01`` + 14 digits is the best evidence.
    """
    return GS in text or BARE_ELEMENT_STRING.match(text) is not None


def looks_like_digital_link(text: str) -> bool:
    """Whether the data is a web address, the only form a Digital Link takes."""
    return DIGITAL_LINK.match(text) is not None


def is_product_barcode(digits: str) -> bool:
    """Whether an all-digit scan is a plain GTIN (EAN-13, UPC-A, ...) with a good check digit.

    Those identify a product, not a pack, so they are never trace codes, but
    they are the commonest wrong scan and deserve their own reason.
    """
    return len(digits) in GTIN_LENGTHS and gs1_check_digit(digits[:-1]) == digits[-1]
