"""GS1: one validation for every input form, complete or refused, and a stored code that round-trips.

The defects of issue 15 §1 each have their exact example here and, through
hypothesis, other inputs of the same kind; the round-trip properties cover
every form the README documents (AIM-prefixed and bare element strings,
bracketed HRI, Digital Link URIs).
"""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from scanner_agent.codes import (
    MAX_SCAN_CHARS,
    Gs1Data,
    Scheme,
    gs1_code_problem,
    parse_gs1,
    parse_scan,
)
from scanner_agent.codes import _gs1_linters as linters
from scanner_agent.codes._gs1 import NOT_CANONICAL
from scanner_agent.codes._gs1_digital_link import MAX_DIGITAL_LINK
from scanner_agent.codes._gs1_element_string import MAX_ELEMENT_STRING
from scanner_agent.codes._gs1_hri import MAX_HRI
from scanner_agent.codes._gs1_syntax import AI_TABLE, DICTIONARY_FILE, load
from tests.codes.gs1_strategies import (
    GS,
    GS1_AIMS,
    bracketed,
    element_string,
    trace_elements,
    valid_value,
)

GTIN = "09506000134352"
BASE = f"(01){GTIN}(21)ABC"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "gs1"

X_AIS = sorted(ai for ai, e in AI_TABLE.items() if e.components[0].cset == "X")
FIXED_AIS = sorted(ai for ai, e in AI_TABLE.items() if e.fixed)


def refused(text: str, *fragments: str) -> str:
    result = parse_scan(text)
    assert not result.valid, result
    assert result.code is None
    assert result.reason is not None
    for fragment in fragments:
        assert fragment in result.reason, result.reason
    return result.reason


def elements_of(code: str) -> dict[str, str]:
    data = parse_gs1(code)
    assert isinstance(data, Gs1Data), data
    return dict(data.elements)


# --- the dictionary, shipped as package data ---------------------------------------------


def test_the_dictionary_ships_in_the_package_with_its_licence() -> None:
    folder = resources.files("scanner_agent.codes").joinpath("gs1data")
    names = {entry.name for entry in folder.iterdir()}
    assert {DICTIONARY_FILE, "LICENSE", "NOTICE"} <= names
    assert "Apache License" in folder.joinpath("LICENSE").read_text("utf-8")
    if SHARED.is_dir():  # the copy is the one GS1 publishes, unchanged
        shipped = folder.joinpath(DICTIONARY_FILE).read_text("utf-8")
        assert shipped == (SHARED / DICTIONARY_FILE).read_text("utf-8")


def test_every_ai_of_the_dictionary_is_loaded_with_its_rules() -> None:
    assert len(AI_TABLE) > 500
    gtin = AI_TABLE["01"]
    assert gtin.fixed
    assert gtin.dl_attribute
    assert [(c.cset, c.min_length, c.max_length) for c in gtin.components] == [("N", 14, 14)]
    assert [name for name, _ in gtin.components[0].linters] == ["csum", "gcppos2"]
    assert ("01", "22", "10", "21") in gtin.dl_sequences
    assert ("01", "235") in gtin.dl_sequences
    assert AI_TABLE["21"].req == ((("01",), ("03",), ("8006",)),)
    assert AI_TABLE["3103"].ex == ("310n",)
    cpid = AI_TABLE["8010"]
    assert (cpid.min_length, cpid.max_length, cpid.components[0].cset) == (1, 30, "Y")
    assert AI_TABLE["423"].max_length == 15
    assert AI_TABLE["423"].min_length == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("99  ?  X..90,nosuchlinter  # X", "linter 'nosuchlinter' is not implemented"),
        ("99  ?  X..90 frob=1  # X", "unknown attribute"),
        ("99  ?  X..90 req=9x  # X", "bad ai pattern"),
        ("99  ?  X..90  # X\n990  ?  X..9  # Y", "is a prefix of ai 990"),
        ("99  *  X..90  # X", "has a variable length"),
        ("99  X..90  # X\n99  X..9  # Y", "defined twice"),
    ],
)
def test_a_dictionary_the_code_does_not_understand_stops_the_load(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load(line)


# --- linters, against GS1's reference cases --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("csum", ["09506000134352", "0"], ["09506000134353"]),
        (
            "csumalpha",
            ["1987654Ad4X4bL5ttr2310c2K", "22", "00000!HV"],
            ["33", "1987654Ad4X4bL5ttr2310cXK"],
        ),
        ("gcppos1", ["0123", "0123A"], ["012", "012A"]),
        ("gcppos2", ["I0123"], ["I012", "IA123"]),
        ("yymmd0", ["200200", "000229", "251231"], ["201300", "200230", "210229"]),
        ("yymmdd", ["240229", "000606"], ["200600", "200132", "230229"]),
        ("yyyymmdd", ["20000229", "20240229"], ["19000229", "20231301"]),
        ("hhmi", ["0000", "2359"], ["2400", "2360"]),
        ("iso3166", ["156", "276"], ["000", "999"]),
        ("iso3166999", ["999", "156"], ["000"]),
        ("iso3166alpha2", ["CN", "DE"], ["XX", "cn"]),
        ("iso4217", ["156", "978"], ["000"]),
        (
            "iban",
            ["FR7630006000011234567890189", "MT90MALT011000012345MTLCAST001SABC"],
            ["BE71096123456760", "XX361234567890", "BE71"],
        ),
        ("pcenc", ["", "ABC%20", "%ff"], ["%g", "ABC%gf", "%2"]),
        ("pieceoftotal", ["0101", "0199"], ["0001", "0100", "0201"]),
        ("posinseqslash", ["1/1", "9/10", "100/100"], ["0/1", "1/02", "2/1", "1/", "x/y"]),
        ("latitude", ["1800000000"], ["1800000001"]),
        ("longitude", ["3600000000"], ["3600000001"]),
        ("mediatype", ["01", "10", "80", "99"], ["00", "11", "79"]),
        ("packagetype", ["1A", "BX", "PLP"], ["0", "_9"]),
        ("nonzero", ["0001"], ["0000"]),
        ("nozeroprefix", ["1", "10"], ["0", "01"]),
        ("winding", ["0", "1", "9"], ["2"]),
        ("importeridx", ["-", "_", "a", "Z"], ["!", "AA"]),
        (
            "couponposoffer",
            ["001234561234560123456", "0012345612345611234567"],
            ["201234561234560123456", "0012345612345601234567"],
        ),
        ("couponcode", ["012345612345611110123"], ["71234567890123", "0123456123456"]),
        ("hasnondigit", ["1A"], ["12"]),
        ("hyphen", ["-"], ["a"]),
        ("zero", ["0"], ["1"]),
    ],
)
def test_linter_agrees_with_the_reference_cases(name: str, good: list[str], bad: list[str]) -> None:
    check = linters.LINTERS[name]
    for data in good:
        assert check(data) is None, (name, data)
    for data in bad:
        assert check(data), (name, data)


def test_every_linter_the_dictionary_names_is_implemented() -> None:
    named = {name for e in AI_TABLE.values() for c in e.components for name, _ in c.linters}
    assert named <= set(linters.LINTERS)
    assert "couponcode" in named


# --- issue 15 §1: the defects, each exact example and its kind ---------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"(01){GTIN}(17)(21)ABC", "ai (17): 0 characters, needs 6 digits"),
        (f"{BASE}(17)", "ai (17): 0 characters, needs 6 digits"),
        (f"{BASE}(11)", "ai (11): 0 characters, needs 6 digits"),
        (f"{BASE}(17)2506", "ai (17): 4 characters, needs 6 digits"),
        (f"{BASE}(1A)12345", "unknown ai (1A)"),
        (f"{BASE}()12345", "empty ai ()"),
        (f"{BASE}(15", "no ')' closes '(15'"),
        (f"{BASE}(BADAI)DATA", "unknown ai (BADAI)"),
        (f"(01){GTIN}(21)AB C", "ai (21): space not allowed (cset 82)"),
        (f"(01){GTIN}(21)ABC ", "ai (21): space not allowed (cset 82)"),
        (f"(01){GTIN}(21) ABC", "ai (21): space not allowed (cset 82)"),
        (f"(01){GTIN}(21)ABC DEF", "ai (21): space not allowed (cset 82)"),
        (f" (01){GTIN}(21)ABC", "space before the first ai"),
        (f"https://id.gs1.org/01/{GTIN}/21/ABC?17=", "digital link: ?17= has no value"),
        (f"https://id.gs1.org/01/{GTIN}/21/ABC?17", "digital link: ?17 has no value"),
        (f"https://id.gs1.org/01/{GTIN}/21/ABC?11=&17=250600", "?11= has no value"),
        (f"https://id.gs1.org/01/{GTIN}/21/ABC/extra", "trailing data 'extra' after /21/ABC"),
        (f"https://id.gs1.org/01/{GTIN}/21/ABC/", "trailing '/' after /21/ABC"),
        (f"https://id.gs1.org/01/{GTIN}/21/ABC/10", "/10/ has no value"),
        (f"https://id.gs1.org/01/{GTIN}/21/ABC?23=1", "unknown ai (23) in the query"),
        (f"https://id.gs1.org/01/{GTIN}/21/ABC?10=1", "ai (10) belongs in the path"),
        (f"https://id.gs1.org/01/{GTIN}/21/ABC?17=250600&17=250600", "ai (17) given twice"),
        (f"https://id.gs1.org/01/{GTIN}/21/A%2", "bad percent-escape '%2'"),
        (f"https://id.gs1.org/01/{GTIN}/21/A B", "space not allowed in a uri"),
        (
            f"https://a/01/{GTIN}/10/A/22/B/21/C",
            "path 01/10/22/21 is not a key with its qualifiers",
        ),
        ("https://id.gs1.org/about", "digital link has no gs1 primary key in its path"),
        (f"]d201{GTIN}17250631{GS}21ABC", "ai (17): no day 31 in month 06 (yymmd0)"),
        (f"]d201{GTIN[:-1]}3{GS}21ABC", "ai (01): wrong check digit: expected 2, got 3 (csum)"),
        (f"]d201{GTIN}{GS}{GS}21ABC", "empty element"),
        (f"]d201{GTIN}21ABC{GS}80101234ab", "ai (8010): 'a' not allowed (cset 39)"),
        (f"]d201{GTIN}21ABC{GS}422999", "ai (422): 999 is not an iso 3166 country code (iso3166)"),
        (f"]d201{GTIN}21ABC{GS}235X", "ai (21) cannot be with (235) (ex)"),
        (f"]d201{GTIN}21ABC{GS}2399", "unknown ai (2399)"),
    ],
)
def test_gs1_that_cannot_be_read_completely_is_refused_naming_the_ai_and_rule(
    text: str, reason: str
) -> None:
    full = refused(text, reason)
    assert full.startswith("malformed gs1 code: ")


def test_the_same_values_refused_in_element_string_form_are_refused_in_every_form() -> None:
    for aim in GS1_AIMS:
        refused(f"{aim}01{GTIN}17{GS}21ABC", "ai (17)")
    refused(f"01{GTIN}17{GS}21ABC", "ai (17)")


@given(
    ai=st.sampled_from(FIXED_AIS),
    data=st.data(),
)
def test_a_predefined_length_ai_short_of_its_length_is_refused_in_every_form(
    ai: str, data: st.DataObject
) -> None:
    value = data.draw(valid_value(ai))
    short = value[: data.draw(st.integers(0, len(value) - 1))]
    text = f"(01){short}(21)ABC" if ai == "01" else f"{BASE}({ai}){short}"
    refused(text, f"ai ({ai}): {len(short)} character")
    scan = f"]d201{short}{GS}21ABC" if ai == "01" else f"]d201{GTIN}21ABC{GS}{ai}{short}"
    refused(scan, f"ai ({ai}): {len(short)} character")


@given(
    ai=st.sampled_from(X_AIS),
    data=st.data(),
    space=st.sampled_from([" ", "\u3000", "\xa0"]),
)
def test_whitespace_anywhere_in_a_value_is_refused_never_removed(
    ai: str, data: st.DataObject, space: str
) -> None:
    value = data.draw(valid_value(ai))
    at = data.draw(st.integers(0, len(value)))
    spaced = value[:at] + space + value[at:]
    for text in (f"{BASE}({ai}){spaced}", f"]d201{GTIN}{ai}{spaced}{GS}21ABC"):
        if ai == "21":
            text = f"(01){GTIN}(21){spaced}"
        result = parse_scan(text)
        assert not result.valid, text
        assert result.reason is not None


@given(junk=st.text(alphabet="ABCXYZ()0123456789 !%", min_size=1, max_size=12))
@example("(1A)12345")
@example("()12345")
@example("(15")
@example("(BADAI)DATA")
@example("(11)")
def test_trailing_junk_after_a_good_code_never_leaves_the_good_part_accepted(junk: str) -> None:
    result = parse_scan(BASE + junk)
    if result.valid:  # only when the junk is itself complete, valid GS1 data
        assert result.code is not None
        assert len(elements_of(result.code)) > 2 or elements_of(result.code)["21"] != "ABC"


def test_digital_link_attributes_are_refused_when_empty_whatever_the_ai() -> None:
    for ai in sorted(a for a, e in AI_TABLE.items() if e.dl_attribute and a not in ("01", "10")):
        refused(f"https://id.gs1.org/01/{GTIN}/21/ABC?{ai}=", f"?{ai}= has no value")


def test_dotcode_is_read_like_the_other_gs1_carriers() -> None:
    result = parse_scan(f"]J1010950600013435217250600104711{GS}21ABC")
    assert result.valid
    assert result.symbology == "]J1"
    assert result.code == f"(01){GTIN}(17)250600(10)4711(21)ABC"
    assert result.expiry == dt.date(2025, 6, 30)


@pytest.mark.parametrize("cpid", ["1234", "12345", "1234-/#ABC", "1" * 4 + "Z" * 26])
def test_ai_8010_takes_what_the_dictionary_allows(cpid: str) -> None:
    result = parse_scan(f"{BASE}(8010){cpid}")
    assert result.valid, result.reason
    assert elements_of(result.code or "")["8010"] == cpid


@pytest.mark.parametrize("cpid", ["", "123", "1" * 31, "12a4"])
def test_ai_8010_outside_the_dictionary_is_refused(cpid: str) -> None:
    refused(f"{BASE}(8010){cpid}", "ai (8010)")


# --- the stored code: unambiguous and round-tripping --------------------------------------------


def test_parentheses_in_a_value_never_collide_with_a_next_ai() -> None:
    split = parse_scan(f"]d201{GTIN}21SN1{GS}91X")
    inside = parse_scan(f"]d201{GTIN}21SN1(91)X")
    assert split.valid
    assert inside.valid
    assert split.code == f"(01){GTIN}(21)SN1(91)X"
    assert inside.code == f"(01){GTIN}(21)SN1\\(91)X"
    assert elements_of(split.code or "") == {"01": GTIN, "21": "SN1", "91": "X"}
    assert elements_of(inside.code or "") == {"01": GTIN, "21": "SN1(91)X"}


def test_ordinary_codes_are_stored_byte_for_byte_as_before() -> None:
    assert parse_scan(f"]d201{GTIN}17250630104711{GS}21ABC").code == (
        f"(01){GTIN}(17)250630(10)4711(21)ABC"
    )
    assert parse_scan(f"]d221ABC{GS}104711{GS}1725063001{GTIN}").code == (
        f"(01){GTIN}(17)250630(10)4711(21)ABC"
    )


def test_an_sscc_before_the_gtin_still_gives_a_code_starting_with_the_gtin() -> None:
    result = parse_scan(f"]C100106141412345678908{GS}01{GTIN}21ABC")
    assert result.valid, result.reason
    assert result.code == f"(01){GTIN}(00)106141412345678908(21)ABC"
    assert gs1_code_problem(result.code) is None


def test_a_code_not_in_canonical_order_is_not_a_stored_code() -> None:
    assert gs1_code_problem(f"(21)ABC(01){GTIN}") == NOT_CANONICAL + BASE
    assert parse_scan(f"(21)ABC(01){GTIN}").code == BASE


@settings(max_examples=300)
@given(elements=trace_elements(), aim=st.sampled_from(GS1_AIMS), data=st.data())
def test_every_form_of_the_same_data_gives_one_code_that_round_trips(
    elements: list[tuple[str, str]], aim: str, data: st.DataObject
) -> None:
    expected = dict(elements)
    scanned = parse_scan(aim + element_string(elements) + "\r\n")
    assume(scanned.valid)  # companions may exclude each other (ex=) or lack each other (req=)
    code = scanned.code
    assert code is not None
    assert scanned.scheme is Scheme.GS1
    assert elements_of(code) == expected  # nothing dropped, nothing changed
    assert gs1_code_problem(code) is None
    stored = parse_gs1(code)
    assert isinstance(stored, Gs1Data)
    forms = [
        bracketed(elements),
        stored.bracketed(),
        aim + stored.element_string(),
        stored.element_string(),
    ]
    link = stored.digital_link(data.draw(st.sampled_from(["https://id.gs1.org", "HTTP://a/b"])))
    if link is not None:
        forms.append(link)
    bare = element_string(elements)
    if GS in bare or bare.startswith("01"):  # what tells a bare scan is GS1
        forms.append(bare)
    for form in forms:
        again = parse_scan(form)
        assert again.valid, (form, again.reason)
        assert again.code == code, form
        assert (again.gtin, again.serial, again.batch, again.expiry) == (
            scanned.gtin,
            scanned.serial,
            scanned.batch,
            scanned.expiry,
        )


@settings(max_examples=300)
@given(
    elements=st.lists(
        st.tuples(
            st.sampled_from(["01", "21", "10", "17", "91", "240", "7003", "8010", "8200"]),
            st.text(alphabet="0123456789ABab()%/-_ !\\", max_size=24),
        ),
        max_size=6,
    )
)
@example([("01", GTIN), ("21", "SN1(91)X")])
@example([("01", GTIN), ("21", "A\\(B")])
def test_no_accepted_scan_has_fewer_ais_or_other_values_than_its_input(
    elements: list[tuple[str, str]],
) -> None:
    text = bracketed(elements)
    result = parse_scan(text)
    if not result.valid:
        return
    assert result.code is not None
    stored = elements_of(result.code)
    assert stored == dict(elements)
    assert len(stored) == len({ai for ai, _ in elements})


@given(text=st.text(alphabet=f"0123456789{GS}ABC()", max_size=60), aim=st.sampled_from(GS1_AIMS))
def test_an_accepted_element_string_accounts_for_every_character(text: str, aim: str) -> None:
    result = parse_scan(aim + text)
    if not result.valid or result.scheme is not Scheme.GS1:
        return
    stored = elements_of(result.code or "")
    data = text.replace(GS, "")
    assert sum(len(ai) + len(value) for ai, value in stored.items()) <= len(data)
    for ai, value in stored.items():
        assert ai + value in data


# --- bounds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aim", "head", "limit"),
    [
        ("]d2", f"01{GTIN}21ABC{GS}91", MAX_ELEMENT_STRING),
        ("", f"{BASE}(91)", MAX_HRI),
        ("]Q1", f"https://id.gs1.org/01/{GTIN}/21/ABC?x=", MAX_DIGITAL_LINK),
    ],
)
def test_each_form_longer_than_any_symbol_carries_is_refused_as_too_long(
    aim: str, head: str, limit: int
) -> None:
    longest = head + "A" * (limit - len(head))
    assert "too long" not in (parse_scan(aim + longest).reason or "")
    refused(aim + longest + "A", f"too long: {limit + 1} characters, at most {limit}")


def test_a_huge_scan_is_refused_before_any_parsing() -> None:
    for scan in ("(01)" + "9" * 1_000_000, b"]d2" + b"01" * 500_000, "x" * (MAX_SCAN_CHARS + 1)):
        result = parse_scan(scan)
        assert not result.valid
        assert result.reason is not None
        assert "too long: " in result.reason


def test_the_longest_valid_element_string_is_read() -> None:
    # 91-99 hold up to 90 characters each; repeating identical AIs is allowed.
    body = f"01{GTIN}21ABC" + "".join(f"{GS}9{k}" + "Z" * 90 for k in range(1, 10))
    result = parse_scan("]d2" + body)
    assert result.valid, result.reason
    assert len(elements_of(result.code or "")) == 11
