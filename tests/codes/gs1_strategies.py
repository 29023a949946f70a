"""Hypothesis strategies for GS1 data, built from GS1's Syntax Dictionary (shared by tests).

``valid_value(ai)`` draws a value the dictionary accepts for one AI: the right
lengths and character sets, a correct check digit, a real date, a real
country ... ``trace_elements()`` draws a unit trace code: GTIN (01), serial
(21) and up to four other AIs whose mandatory associations 01 and 21 fulfil.
The encoders here are written independently of the code under test, from
the GS1 rules, so a round trip through them checks the parser, not itself.
"""

from __future__ import annotations

import functools
import itertools

import pycountry
from hypothesis import strategies as st

from scanner_agent.codes._gs1_linters import (
    CSET32,
    CSET39,
    CSET64,
    CSET82,
    MEDIA_TYPES,
    PACKAGE_TYPES,
    gs1_check_digit,
)
from scanner_agent.codes._gs1_syntax import AI_TABLE, Component

GS = "\x1d"
ALPHABETS = {"N": "0123456789", "X": CSET82, "Y": CSET39, "Z": CSET64}
GS1_AIMS = ["]d2", "]C1", "]Q3", "]e0", "]J1"]

IBANS = [
    "FR7630006000011234567890189",
    "DE91100000000123456789",
    "GB98MIDL07009312345678",
    "BE71096123456769",
    "MT90MALT011000012345MTLCAST001SABC",
]
"""Valid IBANs (the check digits of ISO 13616), as GS1's linter tests use them."""

COUPON_CODES = ["012345612345611110123"]
COUPON_POS_OFFERS = ["001234561234560123456", "0012345612345611234567"]

Element = tuple[str, str]


def _chars(alphabet: str, n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=n, max_size=n)


def _csumalpha_pair(body: str) -> str:
    primes = list(itertools.islice((p for p in itertools.count(2) if _prime(p)), len(body)))
    total = sum(CSET82.index(c) * w for c, w in zip(reversed(body), primes, strict=False)) % 1021
    return CSET32[total >> 5] + CSET32[total & 31]


@functools.cache
def _prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))


def _yymmdd(day_zero: bool) -> st.SearchStrategy[str]:
    days = st.integers(0 if day_zero else 1, 28)
    return st.builds(
        lambda y, m, d: f"{y:02d}{m:02d}{d:02d}", st.integers(0, 99), st.integers(1, 12), days
    )


def _component(component: Component) -> st.SearchStrategy[str] | None:
    """A value for one component that passes its linters, or None if not drawn here."""
    names = [name for name, _check in component.linters]
    alphabet = ALPHABETS[component.cset]
    low, high = component.min_length, component.max_length
    fixed = {
        "yymmd0": _yymmdd(True),
        "yymmdd": _yymmdd(False),
        "yyyymmdd": st.builds(
            lambda y, m, d: f"{y:04d}{m:02d}{d:02d}",
            st.integers(1900, 2099),
            st.integers(1, 12),
            st.integers(1, 28),
        ),
        "hh": st.integers(0, 23).map("{:02d}".format),
        "mi": st.integers(0, 59).map("{:02d}".format),
        "ss": st.integers(0, 59).map("{:02d}".format),
        "hhmi": st.builds(lambda h, m: f"{h:02d}{m:02d}", st.integers(0, 23), st.integers(0, 59)),
        "iso3166": st.sampled_from(sorted(c.numeric for c in pycountry.countries)),
        "iso3166999": st.sampled_from([*sorted(c.numeric for c in pycountry.countries), "999"]),
        "iso3166alpha2": st.sampled_from(sorted(c.alpha_2 for c in pycountry.countries)),
        "iso4217": st.sampled_from(sorted(c.numeric for c in pycountry.currencies)),
        "iso5218": st.sampled_from("0129"),
        "winding": st.sampled_from("019"),
        "yesno": st.sampled_from("01"),
        "zero": st.just("0"),
        "mediatype": st.sampled_from(sorted(MEDIA_TYPES)),
        "importeridx": st.sampled_from("-_0aZ9"),
        "packagetype": st.sampled_from(sorted(PACKAGE_TYPES)),
        "latitude": st.integers(0, 1800000000).map("{:010d}".format),
        "longitude": st.integers(0, 3600000000).map("{:010d}".format),
        "pieceoftotal": st.integers(1, 99).flatmap(
            lambda total: st.integers(1, total).map(lambda piece: f"{piece:02d}{total:02d}")
        ),
        "posinseqslash": st.integers(1, 9).flatmap(
            lambda end: st.integers(1, end).map(lambda pos: f"{pos}/{end}")
        ),
        "iban": st.sampled_from(IBANS),
        "couponcode": st.sampled_from(COUPON_CODES),
        "couponposoffer": st.sampled_from(COUPON_POS_OFFERS),
        "hyphen": st.integers(low, high).map(lambda n: "-" * n),
    }
    for name in names:
        if name in fixed:
            return fixed[name].filter(lambda v: low <= len(v) <= high)
    rest = set(names) - {"csum", "csumalpha", "gcppos1", "gcppos2", "key", "nonzero"}
    rest -= {"nozeroprefix", "pcenc", "hasnondigit"}
    if rest:
        return None
    if "pcenc" in names:
        alphabet = alphabet.replace("%", "")
    tail = 2 if "csumalpha" in names else 1 if "csum" in names else 0
    gcp = 5 if "gcppos2" in names else 4 if {"gcppos1", "key"} & set(names) else 0
    min_len = max(low, gcp + tail + ("hasnondigit" in names))

    def build(n: int) -> st.SearchStrategy[str]:
        digits_first = st.text(alphabet="0123456789", min_size=gcp, max_size=gcp)
        body = st.builds(str.__add__, digits_first, _chars(alphabet, max(0, n - gcp - tail))).map(
            lambda s: s[: n - tail]
        )
        if "nozeroprefix" in names:
            body = body.map(lambda s: ("1" + s[1:]) if s else s)
        if "nonzero" in names:
            body = body.map(lambda s: s[:-1] + "7" if s else s)
        if "hasnondigit" in names:
            body = body.map(lambda s: s[:-1] + "A" if s.isdigit() and s else s)
        if "csum" in names:
            return body.map(lambda s: s + gs1_check_digit(s))
        if "csumalpha" in names:
            return body.map(lambda s: s + _csumalpha_pair(s))
        return body

    return st.integers(min_len, high).flatmap(build)


@functools.cache
def drawable(ai: str) -> bool:
    """Whether :func:`valid_value` can draw values for ``ai``."""
    return all(_component(c) is not None for c in AI_TABLE[ai].components)


def valid_value(ai: str) -> st.SearchStrategy[str]:
    """A value GS1's dictionary accepts for ``ai`` (its associations aside)."""
    components = AI_TABLE[ai].components
    mandatory = [c for c in components if not c.optional]
    optional = [c for c in components if c.optional]

    def parts(k: int) -> st.SearchStrategy[str]:
        chosen = mandatory + optional[:k]
        strategies = [_component(c) for c in chosen]
        return st.tuples(*[s for s in strategies if s is not None]).map("".join)

    return st.integers(0, len(optional)).flatmap(parts)


def _fulfilled_by(ai: str, present: set[str]) -> bool:
    """Whether ``ai`` has its req= associations in ``present`` and none of its ex= ones."""
    entry = AI_TABLE[ai]

    def match(pattern: str, other: str) -> bool:
        stem = pattern.rstrip("n")
        return len(other) == len(pattern) and other.startswith(stem)

    for alternatives in entry.req:
        if not any(all(any(match(p, a) for a in present) for p in g) for g in alternatives):
            return False
    return not any(match(p, a) for p in entry.ex for a in present if a != ai)


@functools.cache
def trace_companions() -> list[str]:
    """AIs that may go with (01) and (21) in a trace code, on their own."""
    out = []
    for ai in sorted(AI_TABLE):
        if ai in ("01", "21") or not drawable(ai):
            continue
        if _fulfilled_by(ai, {"01", "21", ai}) and all(
            _fulfilled_by(base, {"01", "21", ai}) for base in ("01", "21")
        ):
            out.append(ai)
    return out


def trace_elements(max_extra: int = 4) -> st.SearchStrategy[list[Element]]:
    """01 + 21 + up to ``max_extra`` companions, each with a valid value, in a random order."""
    extra = st.lists(st.sampled_from(trace_companions()), max_size=max_extra, unique=True)
    return extra.flatmap(
        lambda ais: st.tuples(
            *[valid_value(ai).map(lambda v, ai=ai: (ai, v)) for ai in ["01", "21", *ais]]
        )
    ).flatmap(lambda elements: st.permutations(list(elements)))


def element_string(elements: list[Element]) -> str:
    """GS1 element string: a GS after every AI that is not of predefined length, but the last."""
    out = []
    for index, (ai, value) in enumerate(elements):
        out.append(ai + value)
        if index < len(elements) - 1 and not AI_TABLE[ai].fixed:
            out.append(GS)
    return "".join(out)


def bracketed(elements: list[Element]) -> str:
    """Bracketed AI text, ``(`` in a value escaped as ``\\(`` (the GS1 Syntax Engine convention)."""
    return "".join(f"({ai})" + value.replace("(", "\\(") for ai, value in elements)
