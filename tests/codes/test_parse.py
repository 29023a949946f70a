"""Behaviour of ``parse_scan`` on the scans a pharmacy scanner actually sends."""

from __future__ import annotations

import datetime as dt
import doctest
import json

import pytest

import scanner_agent.codes
from scanner_agent.codes import ScanResult, Scheme, parse_scan

CN20 = "81234567890123456789"
GTIN = "09506000134352"
GS = "\x1d"
ELEMENT_STRING = f"01{GTIN}17250630104711{GS}21ABC"
HRI = f"(01){GTIN}(17)250630(10)4711(21)ABC"
DIGITAL_LINK = f"https://id.gs1.org/01/{GTIN}/10/4711/21/ABC?17=250630"
MA = "MA.156.M0.100001.1A2B3C4D5E6F"


def assert_invalid(result: ScanResult, *fragments: str) -> None:
    assert not result.valid
    assert result.scheme is None
    assert result.code is None
    assert result.reason is not None
    assert "\n" not in result.reason
    for fragment in fragments:
        assert fragment in result.reason.lower()


# --- public API -------------------------------------------------------------


def test_package_exports_exactly_the_public_api() -> None:
    assert scanner_agent.codes.__all__ == [
        "MAX_SCAN_CHARS",
        "Gs1Data",
        "ScanResult",
        "Scheme",
        "gs1_code_problem",
        "parse_gs1",
        "parse_many",
        "parse_scan",
    ]


def test_scheme_values_are_plain_strings() -> None:
    assert [str(s) for s in Scheme] == ["cn20", "gs1", "ma"]


def test_scan_result_is_frozen() -> None:
    result = parse_scan(CN20)
    with pytest.raises(AttributeError):
        result.valid = False  # type: ignore[misc]


def test_package_docstring_examples_pass() -> None:
    failures, tried = doctest.testmod(scanner_agent.codes)
    assert tried > 0
    assert failures == 0


# --- cn20 -------------------------------------------------------------------


def test_cn20_is_valid_with_product_and_serial_slices() -> None:
    result = parse_scan(CN20)
    assert result.valid
    assert result.reason is None
    assert result.scheme is Scheme.CN20
    assert result.code == CN20
    assert result.product == "8123456"
    assert result.serial == "789012345"
    assert result.gtin is None
    assert result.batch is None
    assert result.expiry is None
    assert result.symbology is None


def test_cn20_with_trailing_crlf_is_valid_and_keeps_no_suffix() -> None:
    result = parse_scan(CN20 + "\r\n")
    assert result.valid
    assert result.raw == CN20 + "\r\n"
    assert result.text == CN20
    assert result.code == CN20


@pytest.mark.parametrize("suffix", ["\r", "\n", "\t", " \r\n", "\r\n\r\n"])
def test_cn20_with_any_trailing_terminator_is_valid(suffix: str) -> None:
    result = parse_scan(CN20 + suffix)
    assert result.valid
    assert result.text == CN20


def test_cn20_with_surrounding_whitespace_is_valid() -> None:
    assert parse_scan(f"  {CN20}  ").code == CN20


@pytest.mark.parametrize("aim", ["]C0", "]d1", "]Q1", "]I0", "]A0", "]d2", "]C1", "]Q3"])
def test_cn20_behind_aim_identifier_is_valid_and_keeps_the_identifier(aim: str) -> None:
    result = parse_scan(f"{aim}{CN20}\r\n")
    assert result.valid
    assert result.scheme is Scheme.CN20
    assert result.symbology == aim
    assert result.text == CN20
    assert result.code == CN20


@pytest.mark.parametrize("digits", ["8123456789012345678", "812345678901234567890"])
def test_cn20_of_wrong_length_is_invalid_and_names_the_length(digits: str) -> None:
    result = parse_scan(digits)
    assert_invalid(result, "20 digits", str(len(digits)))


def test_twenty_digits_not_starting_with_8_are_invalid() -> None:
    result = parse_scan("71234567890123456789")
    assert_invalid(result, "not starting with 8")


def test_cn20_with_fullwidth_digits_is_not_accepted() -> None:
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in CN20)
    assert_invalid(parse_scan(fullwidth))


# --- gs1 --------------------------------------------------------------------


@pytest.mark.parametrize("aim", ["]d2", "]C1", "]Q3", "]e0"])
def test_gs1_element_string_behind_gs1_aim_identifier_is_valid(aim: str) -> None:
    result = parse_scan(aim + ELEMENT_STRING + "\r\n")
    assert result.valid
    assert result.scheme is Scheme.GS1
    assert result.symbology == aim
    assert result.text == ELEMENT_STRING
    assert result.code == HRI
    assert result.gtin == GTIN
    assert result.product == GTIN
    assert result.serial == "ABC"
    assert result.batch == "4711"
    assert result.expiry == dt.date(2025, 6, 30)


def test_bare_gs1_element_string_with_gs_separators_is_valid_and_keeps_them_in_text() -> None:
    result = parse_scan(ELEMENT_STRING)
    assert result.valid
    assert result.symbology is None
    assert GS in result.text
    assert result.code == HRI


def test_bare_gs1_element_string_starting_with_gtin_needs_no_separator() -> None:
    result = parse_scan(f"01{GTIN}21XYZ789")
    assert result.valid
    assert result.code == f"(01){GTIN}(21)XYZ789"


def test_gs1_leading_and_trailing_gs_are_ignored() -> None:
    result = parse_scan(f"]d2{GS}01{GTIN}21ABC{GS}\r\n")
    assert result.valid
    assert result.code == f"(01){GTIN}(21)ABC"


def test_gs1_without_separator_after_variable_field_swallows_the_rest() -> None:
    # Without GS the batch (10) runs to the end, so there is no serial:
    # the scanner must transmit FNC1 as GS for this to be read right.
    result = parse_scan(f"]d201{GTIN}10471121ABC")
    assert_invalid(result, "serial", "ai 21")


def test_gs1_hri_text_is_valid_and_gives_the_same_code() -> None:
    result = parse_scan(HRI)
    assert result.valid
    assert result.scheme is Scheme.GS1
    assert result.code == HRI


def test_gs1_digital_link_and_element_string_of_the_same_data_give_the_same_code() -> None:
    link = parse_scan(DIGITAL_LINK)
    element = parse_scan("]d2" + ELEMENT_STRING)
    hri = parse_scan(HRI)
    assert link.valid
    assert link.scheme is Scheme.GS1
    assert link.code == element.code == hri.code == HRI
    assert (link.gtin, link.serial, link.batch, link.expiry) == (
        element.gtin,
        element.serial,
        element.batch,
        element.expiry,
    )


def test_gs1_element_order_does_not_change_the_code() -> None:
    reordered = parse_scan(f"]d221ABC{GS}104711{GS}1725063001{GTIN}")
    assert reordered.valid
    assert reordered.code == HRI


def test_gs1_digital_link_behind_qr_identifier_on_any_domain_is_valid() -> None:
    result = parse_scan(f"]Q1https://trace.example.cn/01/{GTIN}/21/ABC")
    assert result.valid
    assert result.symbology == "]Q1"
    assert result.code == f"(01){GTIN}(21)ABC"


def test_gs1_day_00_expiry_means_last_day_of_month() -> None:
    result = parse_scan(f"]d201{GTIN}17240200{GS}21ABC")
    assert result.valid
    assert result.expiry == dt.date(2024, 2, 29)
    assert result.code is not None
    assert "(17)240200" in result.code


def test_gs1_invalid_expiry_date_is_invalid() -> None:
    assert_invalid(parse_scan(f"]d201{GTIN}17251399{GS}21ABC"), "17")


def test_gs1_wrong_gtin_check_digit_is_invalid_with_biips_reason() -> None:
    result = parse_scan(f"]d201{GTIN[:-1]}3{GS}21ABC")
    assert_invalid(result, "check digit", "expected 2, got 3")


def test_gs1_wrong_gtin_check_digit_in_digital_link_is_invalid() -> None:
    result = parse_scan(f"https://id.gs1.org/01/{GTIN[:-1]}3/21/ABC")
    assert_invalid(result, "check digit")


def test_gs1_without_serial_is_not_a_trace_code() -> None:
    result = parse_scan(f"]d201{GTIN}17250630104711")
    assert_invalid(result, "without serial number (ai 21)", "not a unit trace code")


def test_gs1_without_gtin_is_not_a_trace_code() -> None:
    result = parse_scan("]C100106141412345678908400ORDER-7")
    assert_invalid(result, "without gtin")


def test_gs1_serial_without_gtin_breaks_its_mandatory_association() -> None:
    result = parse_scan(f"]C100106141412345678908{GS}21ABC")
    assert_invalid(result, "ai (21) needs (01), (03) or (8006) with it (req)")


def test_gs1_with_conflicting_repeated_ai_is_invalid() -> None:
    result = parse_scan(f"]d201{GTIN}21ABC{GS}21DEF")
    assert_invalid(result, "conflicting", "21")


def test_gs1_garbage_behind_gs1_identifier_is_invalid_with_a_gs1_reason() -> None:
    assert_invalid(parse_scan("]C1hello"), "gs1")


def test_web_link_that_is_not_a_digital_link_is_invalid() -> None:
    assert_invalid(parse_scan("https://example.com/about"), "digital link")


def test_malformed_url_is_invalid_not_an_error() -> None:
    assert_invalid(parse_scan("http://[::1/01/1"))


def test_malformed_hri_is_invalid() -> None:
    assert_invalid(parse_scan("(99999)123"), "malformed gs1 code", "unknown ai (99999)")


# --- ma ---------------------------------------------------------------------


def test_ma_code_is_valid_and_stored_as_scanned() -> None:
    result = parse_scan(f"]Q1{MA}\r\n")
    assert result.valid
    assert result.scheme is Scheme.MA
    assert result.symbology == "]Q1"
    assert result.code == MA
    assert result.product is None
    assert result.serial is None


def test_ma_code_with_data_units_exposes_product_serial_and_batch() -> None:
    code = "MA.156.M0.100001.P01.L2024A.S000123.E20271231"
    result = parse_scan(code)
    assert result.valid
    assert result.code == code
    assert result.product == "MA.156.M0.100001.P01"
    assert result.serial == "000123"
    assert result.batch == "2024A"


def test_ma_node_right_after_the_root_is_not_taken_for_a_data_unit() -> None:
    result = parse_scan("MA.156.M0.100001.S123")
    assert result.valid
    assert result.product is None
    assert result.serial is None


def test_ma_node_resembling_a_bad_date_unit_leaves_parts_unknown() -> None:
    result = parse_scan("MA.156.M0.100001.P01.E2B3C4D")
    assert result.valid
    assert result.product is None


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("MA.156.1", "too short"),
        ("MA.156.M0.10 0001", "characters"),
        ("MA.156..M0.100001", "empty segment"),
        ("MA.156.M0.100001.", "empty segment"),
        ("MA.15X.M0.100001", "country"),
        ("MA.156.M0100001", "segments"),
        ("MA.156.M0." + "A" * 300, "too long"),
        ("MA.156.M0.100001.药品", "characters"),
    ],
)
def test_malformed_ma_code_is_invalid(code: str, fragment: str) -> None:
    assert_invalid(parse_scan(code), fragment)


# --- rejected scans ---------------------------------------------------------


@pytest.mark.parametrize(
    "scan",
    ["9506000134352", "]E09506000134352", "4006381333931", "036000291452", "96385074", GTIN],
)
def test_product_barcode_is_rejected_as_not_a_trace_code(scan: str) -> None:
    assert_invalid(parse_scan(scan))
    assert parse_scan(scan).reason == "a product barcode, not a trace code"


def test_ean13_behind_ean_identifier_keeps_the_identifier() -> None:
    result = parse_scan("]E04006381333931\r\n")
    assert result.symbology == "]E0"
    assert result.text == "4006381333931"


def test_thirteen_digits_with_wrong_check_digit_are_rejected() -> None:
    assert_invalid(parse_scan("4006381333932"), "13-digit")


@pytest.mark.parametrize("scan", ["", "\r\n", "   \t", b"", b"\r\n", "]C0", "]d2\r\n"])
def test_empty_scan_is_rejected(scan: str | bytes) -> None:
    assert parse_scan(scan).reason == "empty scan"


@pytest.mark.parametrize("scan", ["\x00\x01\x02", "8123\x07456", "abc\x1bdef"])
def test_non_printable_garbage_is_rejected(scan: str) -> None:
    assert_invalid(parse_scan(scan), "non-printable")


def test_iso_15434_envelope_is_rejected_with_its_own_reason() -> None:
    assert_invalid(parse_scan(f"[)>\x1e06{GS}1Pabc\x1e\x04"), "15434")


@pytest.mark.parametrize("scan", ["hello", "]", "]C", "]X", "]Y9abc", "]:0abc", "药品追溯码"])
def test_unrecognised_text_is_rejected(scan: str) -> None:
    assert_invalid(parse_scan(scan), "not a recognised trace code")


def test_unknown_aim_character_is_left_in_the_data() -> None:
    result = parse_scan("]:0" + CN20)
    assert result.symbology is None
    assert result.text == "]:0" + CN20


def test_non_text_input_is_rejected_not_raised() -> None:
    result = parse_scan(12345)  # type: ignore[arg-type]
    assert_invalid(result, "unsupported input type")


# --- bytes input ------------------------------------------------------------


def test_utf8_bytes_are_decoded() -> None:
    result = parse_scan((CN20 + "\r\n").encode())
    assert result.valid
    assert result.raw == CN20 + "\r\n"


def test_utf8_digital_link_with_chinese_query_is_decoded() -> None:
    link = f"https://id.gs1.org/01/{GTIN}/21/ABC?名称=药品"
    result = parse_scan(link.encode("utf-8"))
    assert result.raw == link
    assert result.valid


def test_gb18030_bytes_are_decoded_as_chinese() -> None:
    result = parse_scan("无效条码".encode("gb18030"))
    assert result.raw == "无效条码"
    assert_invalid(result, "not a recognised trace code")


def test_bytes_invalid_in_utf8_and_gb18030_fall_back_to_latin1() -> None:
    result = parse_scan(b"\xff\xfe\x00\r\n")
    assert result.raw == "\xff\xfe\x00\r\n"
    assert_invalid(result)


def test_bytearray_and_memoryview_are_accepted() -> None:
    assert parse_scan(bytearray(CN20.encode())).valid  # type: ignore[arg-type]
    assert parse_scan(memoryview(CN20.encode())).valid  # type: ignore[arg-type]


# --- to_dict ----------------------------------------------------------------


def test_to_dict_has_the_documented_keys() -> None:
    assert list(parse_scan(CN20).to_dict()) == [
        "raw",
        "scheme",
        "valid",
        "reason",
        "symbology",
        "code",
        "product",
        "serial",
        "gtin",
        "batch",
        "expiry",
    ]


def test_to_dict_of_gs1_scan_survives_a_json_round_trip() -> None:
    scan = "]d2" + ELEMENT_STRING + "\r\n"
    data = parse_scan(scan).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "raw": scan,
        "scheme": "gs1",
        "valid": True,
        "reason": None,
        "symbology": "]d2",
        "code": HRI,
        "product": GTIN,
        "serial": "ABC",
        "gtin": GTIN,
        "batch": "4711",
        "expiry": "2025-06-30",
    }
    assert type(data["scheme"]) is str


def test_to_dict_of_rejected_scan_keeps_control_characters() -> None:
    data = parse_scan("\x00bad\x1d").to_dict()
    encoded = json.dumps(data)
    assert "\\u0000" in encoded
    assert json.loads(encoded) == data
    assert data["raw"] == "\x00bad\x1d"
    assert data["scheme"] is None
    assert data["valid"] is False
    assert data["expiry"] is None
