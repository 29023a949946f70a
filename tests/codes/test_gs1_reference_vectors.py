"""GS1's own test cases, as an outside conformance check of our GS1 validation.

The inputs and expected outcomes come from the unit tests of the GS1 Barcode
Syntax Engine (github.com/gs1/gs1-syntax-engine, ``src/c-lib/ai.c``,
Apache-2.0): bracketed AI parsing, element strings ("^" standing for FNC1),
each linter triggered through a real AI, and the repeat, ``ex=`` and
``req=`` association rules. Nobody on this project wrote them, so they check
our reading of the dictionary against GS1's. Cases that exercise engine
options we do not have (unknown AIs allowed; no FNC1 in first position
required) are left out.
"""

from __future__ import annotations

import pytest

from scanner_agent.codes._gs1 import Gs1Data, _value_problem, validate
from scanner_agent.codes._gs1_element_string import split_element_string
from scanner_agent.codes._gs1_hri import split_hri

GS = "\x1d"


def content_problem(elements: list[tuple[str, str]] | str) -> str | None:
    """What the engine's parse + linters (no association checks) would refuse, or None."""
    if isinstance(elements, str):
        return elements
    seen: dict[str, str] = {}
    for ai, value in elements:
        if seen.setdefault(ai, value) != value:
            return f"conflicting values for ai ({ai})"
        problem = _value_problem(ai, value)
        if problem:
            return problem
    return None


# --- test_ai_parseAIdata: bracketed AI syntax ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "elements"),
    [
        ("(01)12345678901231", [("01", "12345678901231")]),
        ("(10)12345", [("10", "12345")]),
        ("(01)12345678901231(10)12345", [("01", "12345678901231"), ("10", "12345")]),
        ("(3100)123456(10)12345", [("3100", "123456"), ("10", "12345")]),
        ("(10)12345(11)991225", [("10", "12345"), ("11", "991225")]),
        ("(3900)12345(11)991225", [("3900", "12345"), ("11", "991225")]),
        ("(10)12345\\(11)991225", [("10", "12345(11)991225")]),  # escaped bracket
        ("(10)12345\\(", [("10", "12345(")]),  # at the end too
    ],
)
def test_bracketed_data_the_engine_parses_splits_the_same(
    text: str, elements: list[tuple[str, str]]
) -> None:
    assert split_hri(text) == elements
    assert content_problem(elements) is None


@pytest.mark.parametrize(
    "text",
    [
        "(10)(11)98765",  # value must not be empty
        "(10)12345(11)",  # value must not be empty
        "(1A)12345",  # AI must be numeric
        "1(12345",  # must start with an AI
        "12345",
        "()12345",  # AI too short
        "(1)12345",
        "(12345)12345",  # AI too long
        "(15",  # AI must terminate
        "(1",
        "(",
        "(01)123456789012312(10)12345",  # fixed-length AI too long
        "(10)12345^",  # "^" would be taken for FNC1
        "(17)9(90)217",  # must not parse to ^7990217
    ],
)
def test_bracketed_data_the_engine_refuses_is_refused(text: str) -> None:
    assert content_problem(split_hri(text)) is not None


# --- test_ai_processAIdata: element strings, "^" = FNC1 ---------------------------------------


@pytest.mark.parametrize(
    ("data", "ok"),
    [
        ("^", False),
        ("^891234", False),  # no such AI
        ("^991234", True),
        ("^99~ABC", False),  # not CSET 82
        ("^99ABC~", False),
        ("^0112345678901231", True),
        ("^01A2345678901231", False),
        ("^011234567890123A", False),
        ("^0112345678901234", False),  # check digit
        ("^011234567890123", False),  # too short
        ("^01123456789012312", False),  # "2" is no AI
        ("^0112345678901231^", True),  # superfluous FNC1
        ("^011234567890123^", False),
        ("^01123456789012345^", False),
        ("^01123456789012345^991234", False),
        ("^0112345678901231991234", True),  # fixed length runs into the next AI
        ("^0112345678901231^991234", True),
        ("^2421", True),
        ("^24212", True),
        ("^242123", True),
        ("^2421234", True),
        ("^24212345", True),
        ("^242123456", True),
        ("^242123456^10ABC123", True),
        ("^242123456^", True),
        ("^2421234567", False),  # too long
        ("^81111234", True),
        ("^8111123", False),
        ("^811112345", False),
        ("^81111234^10ABC123", True),
        ("^800112341234512398", True),  # N4 N5 N3 N1 N1
        ("^80011234123451239", False),
        ("^8001123412345123981", False),
        ("^800112341234512398^0112345678901231", True),
        ("^80011234123451239^0112345678901231", False),
        ("^8001123412345123981^01123456789012312", False),
        ("^7007211225211231", True),  # N6 [N6]
        ("^7007211225", True),
        ("^70072112252", False),
        ("^700721122521", False),
        ("^7007211225211", False),
        ("^70072112252112", False),
        ("^700721122521123", False),
        ("^70072112252212311", False),
        ("^800302112345678900ABC", True),  # N1 N13,csum [X..16]
        ("^800302112345678901ABC", False),
        ("^800302112345678900", True),
        ("^800302112345678900^10ABC123", True),
        ("^800302112345678900ABCDEFGHIJKLMNOP", True),
        ("^800302112345678900ABCDEFGHIJKLMNOPQ", False),
        ("^7230121234567890123456789012345678", True),  # X2 X..28
        ("^72301212345678901234567890123456789", False),
        ("^7230123", True),
        ("^723012", False),
        ("^423", False),  # a list of ISO 3166 numeric codes
        ("^4235", False),
        ("^42352", False),
        ("^423528", True),
        ("^4235285", False),
        ("^42352852", False),
        ("^423528528", True),
        ("^4235285285", False),
        ("^42352852852", False),
        ("^423528528528", True),
        ("^4235285285285", False),
        ("^42352852852852", False),
        ("^423528528528528", True),
        ("^4235285285285285", False),
        ("^42352852852852852", False),
        ("^423528528528528528", True),
        ("^4235285285285285285", False),
    ],
)
def test_element_strings_are_judged_as_the_engine_judges_them(data: str, ok: bool) -> None:
    problem = content_problem(split_element_string(data.replace("^", GS)))
    assert (problem is None) is ok, problem


# --- test_ai_linters: each linter through a real AI --------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("(00)123456789012345675", None),
        ("(00)A23456789012345675", "(numeric)"),
        ("(10) ", "space not allowed (cset 82)"),
        ("(8010)123456_", "(cset 39)"),
        ("(8030)ABC:123", "(cset 64)"),
        ("(8030)123=", "padding (cset 64)"),
        ("(00)123456789012345670", "(csum)"),
        ("(8013)123456ABXX", "(csumalpha)"),
        ("(8013)A", "(csumalpha)"),
        ("(401)123", "(gcppos1)"),
        ("(7023)12A4", "(gcppos1)"),
        ("(7040)1AB=", "(importeridx)"),
        ("(8001)12340000012311", "(nonzero)"),
        ("(8003)112345678901281234567890123456", "(zero)"),
        ("(8011)023456789012", "(nozeroprefix)"),
        ("(4321)2", "(yesno)"),
        ("(8001)12341234512321", "(winding)"),
        ("(426)987", "(iso3166)"),
        ("(7030)987ABC", "(iso3166999)"),
        ("(4307)AA", "(iso3166alpha2)"),
        ("(3910)9870", "(iso4217)"),
        ("(8007)FR1234", "(iban)"),
        ("(8007)FR12_45678901234", "(iban)"),
        ("(8007)AB12345678901234", "(iban)"),
        ("(8007)FR12345678901234", "(iban)"),
        ("(4326)201300", "month"),
        ("(4326)201200", "day"),
        ("(4324)2012252400", "hour"),
        ("(4324)2012252360", "minute"),
        ("(8008)201225230060", "second"),
        ("(8026)123456789012310099", "(pieceoftotal)"),
        ("(8026)123456789012310100", "(pieceoftotal)"),
        ("(8026)123456789012310302", "(pieceoftotal)"),
        ("(4300)ABC%0g", "(pcenc)"),
        ("(8112)201234561234560123456", "(couponposoffer)"),
        ("(8112)0", "(couponposoffer)"),
        ("(8112)07", "(couponposoffer)"),
        ("(8112)01123456", "(couponposoffer)"),
        ("(8112)00123456", "(couponposoffer)"),
        ("(8112)00123456123456", "(couponposoffer)"),
        ("(8112)001234561234560", "(couponposoffer)"),
        ("(8110)71234567890123", "(couponcode)"),
        ("(8110)012345", "(couponcode)"),
        ("(8110)0123456123456", "(couponcode)"),
        ("(8110)01234561234560", "(couponcode)"),
        ("(8110)01234561234561", "(couponcode)"),
        ("(8110)012345612345611", "(couponcode)"),
        ("(8110)0123456123456116123456", "(couponcode)"),
        ("(8110)0123456123456111", "(couponcode)"),
        ("(8110)01234561234561111", "(couponcode)"),
        ("(8110)012345612345611115", "(couponcode)"),
        ("(8110)012345612345611119", "(couponcode)"),
        ("(8110)0123456123456111101231", "(couponcode)"),
        ("(8110)01234561234561111012314", "(couponcode)"),
        ("(8110)01234561234561111012310", "(couponcode)"),
        ("(8110)012345612345611110123106123456", "(couponcode)"),
        ("(8110)012345612345611110123101", "(couponcode)"),
        ("(8110)0123456123456111101231011", "(couponcode)"),
        ("(8110)01234561234561111012310115", "(couponcode)"),
        ("(8110)01234561234561111012310119", "(couponcode)"),
        ("(8110)01234561234561111012310110123", "(couponcode)"),
        ("(8110)0123456123456111101231011012371234567890123", "(couponcode)"),
        ("(8110)012345612345611110123101101230", "(couponcode)"),
        ("(8110)0123456123456111101232", "(couponcode)"),
        ("(8110)01234561234561111012320", "(couponcode)"),
        ("(8110)01234561234561111012321", "(couponcode)"),
        ("(8110)012345612345611110123211", "(couponcode)"),
        ("(8110)0123456123456111101232115", "(couponcode)"),
        ("(8110)0123456123456111101232110", "(couponcode)"),
        ("(8110)0123456123456111101232110123", "(couponcode)"),
        ("(8110)012345612345611110123211012371234567890123", "(couponcode)"),
        ("(8110)01234561234561111012321101230", "(couponcode)"),
        ("(8110)0123456123456111101233", "(couponcode)"),
        ("(8110)0123456123456111101233200010", "(couponcode)"),
        ("(8110)0123456123456111101234", "(couponcode)"),
        ("(8110)0123456123456111101234200010", "(couponcode)"),
        ("(8110)01234561234561111012335006064500607", "(couponcode)"),
        ("(8110)0123456123456111101236", "(couponcode)"),
        ("(8110)01234561234561111012360", "(couponcode)"),
        ("(8110)01234561234561111012361", "(couponcode)"),
        ("(8110)0123456123456111101239", "(couponcode)"),
        ("(8110)01234561234561111012393", "(couponcode)"),
        ("(8110)01234561234561111012390", "(couponcode)"),
        ("(8110)012345612345611110123903", "(couponcode)"),
        ("(8110)012345612345611110123900", "(couponcode)"),
        ("(8110)0123456123456111101239000", "(couponcode)"),
        ("(8110)01234561234561111012390002", "(couponcode)"),
        ("(8110)012345612345611110123900000", "(couponcode)"),
        ("(4309)18000000010000000000", "(latitude)"),
        ("(4309)00000000003600000001", "(longitude)"),
        ("(4330)000000X", "(hyphen)"),
        ("(7252)5", "(iso5218)"),
        ("(7258)111", "(posinseqslash)"),
        ("(7258)0/3", "(posinseqslash)"),
        ("(7258)2/1", "(posinseqslash)"),
        ("(01)95012345678903(3103)000123", None),
        ("(01)95012345678902(3103)000123", "(csum)"),
        ("(01)95012345678903(11)131313", "month"),
    ],
)
def test_each_linter_fires_where_the_engine_says(text: str, rule: str | None) -> None:
    problem = content_problem(split_hri(text))
    if rule is None:
        assert problem is None
    else:
        assert problem is not None
        assert rule in problem, problem


# --- test_ai_validateAIs: repeats, ex= and req= ------------------------------------------------


def associations(text: str) -> Gs1Data | str:
    elements = split_hri(text)
    assert not isinstance(elements, str), elements
    return validate(elements)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("(400)ABC", True),
        ("(400)ABC(400)ABC", True),
        ("(400)ABC(99)DEF(400)ABC", True),
        ("(99)ABC(400)XYZ(400)XYZ", True),
        ("(400)ABC(400)AB", False),
        ("(400)ABC(400)ABCD", False),
        ("(400)ABC(400)ABC(400)XYZ", False),
        ("(400)ABC(400)XYZ(400)ABC", False),
        ("(400)ABC(400)XYZ(400)XYZ", False),
        ("(400)ABC(99)DEF(400)XYZ", False),
        ("(99)ABC(400)ABC(400)XYZ", False),
        # ex=
        ("(01)12345678901231(02)12345678901231", False),
        ("(99)ABC123(01)12345678901231(02)12345678901231", False),
        ("(01)12345678901231(99)ABC123(02)12345678901231", False),
        ("(01)12345678901231(02)12345678901231(99)ABC123", False),
        ("(01)12345678901231(255)5412345000150", False),
        ("(01)12345678901231(37)123", False),
        ("(21)ABC123(235)XYZ", False),
        ("(3940)1234(8111)9999", False),
        ("(3940)1234(3941)9999", False),  # matched by 394n, itself aside
        ("(3955)123456(3929)123", False),  # matched by 392n
        # req=
        ("(02)12345678901231", False),
        ("(02)12345678901231(37)123", False),
        ("(99)AAA(02)12345678901231(37)123", False),
        ("(02)12345678901231(37)123(00)123456789012345675", True),
        ("(91)XXX(02)12345678901231(92)YYY(37)123(93)ZZZ(00)123456789012345675", True),
        ("(21)ABC123", False),
        ("(21)ABC123(01)12345678901231", True),
        ("(21)ABC123(8006)123456789012310510", True),
        ("(01)12345678901231(250)ABC123", False),
        ("(01)12345678901231(21)XYZ999(250)ABC123", True),
        ("(01)12345678901231(3925)12599", False),
        ("(01)12345678901231(3925)12599(30)123", True),
        ("(01)12345678901231(3925)12599(3100)654321", True),
        ("(01)12345678901231(3925)12599(3165)654321", True),
        ("(01)12345678901231(3925)12599(3295)654321", True),
        ("(01)12345678901231(3925)12599(3575)654321", True),
        ("(01)12345678901231(3925)12599(3695)654321", True),
        ("(8030)DIGSIG", False),
        ("(8030)DIGSIG(00)123456789012345675", True),
        ("(8030)DIGSIG(01)12345678901231", False),
        ("(8030)DIGSIG(01)12345678901231(21)ABC123", True),
        ("(8030)DIGSIG(253)1234567890128X", True),
        ("(8030)DIGSIG(255)12345678901280", True),
        ("(8030)DIGSIG(8003)01234567890128X", True),
        ("(8030)DIGSIG(8004)01234567890", True),
        ("(8030)DIGSIG(8006)123456789012310102", False),
        ("(8030)DIGSIG(8006)123456789012310102(21)ABC123", True),
        ("(8030)DIGSIG(8010)1234567890", False),
        ("(8030)DIGSIG(8010)1234567890(8011)123456789012", True),
        ("(8030)DIGSIG(8017)123456789012345675", True),
        ("(8030)DIGSIG(8018)123456789012345675", True),
        # a digital signature needs the serialised form of (253), (255) and (8003)
        ("(253)1234567890128", True),
        ("(253)1234567890128(8030)ABC123", False),
        ("(253)1234567890128X(8030)ABC123", True),
        ("(255)1234567890128", True),
        ("(255)1234567890128(8030)ABC123", False),
        ("(255)12345678901280(8030)ABC123", True),
        ("(8003)01234567890128", True),
        ("(8003)01234567890128(8030)ABC123", False),
        ("(8003)01234567890128X(8030)ABC123", True),
    ],
)
def test_associations_are_judged_as_the_engine_judges_them(text: str, ok: bool) -> None:
    outcome = associations(text)
    assert isinstance(outcome, Gs1Data) is ok, outcome
