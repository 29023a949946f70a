"""SSI bar code types as AIM identifiers: the table, the ECI guard, no double prefix."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from drivers.ssi_symbology import CODE_TYPES, aim_identifier, with_aim
from scanner_agent.codes import parse_scan as parse

GS1 = b"010690123456789217280500104711\x1d21ABC123"
GS1_HRI = "(01)06901234567892(17)280500(10)4711(21)ABC123"


def test_gs1_types_get_the_identifier_that_declares_gs1_data() -> None:
    assert aim_identifier(0xC1, GS1) == b"]d2"  # GS1 Data Matrix
    assert aim_identifier(0x0F, GS1) == b"]C1"  # GS1-128
    assert aim_identifier(0xC2, GS1) == b"]Q3"  # GS1 QR
    for databar in (0x30, 0x31, 0x32):
        assert aim_identifier(databar, b"0106901234567892") == b"]e0"


def test_plain_matrix_types_and_ean() -> None:
    assert aim_identifier(0x1B, b"HELLO") == b"]d1"  # Data Matrix ECC 200
    assert aim_identifier(0x1C, b"HELLO") == b"]Q1"  # QR Model 2
    assert aim_identifier(0x0B, b"6901234567892") == b"]E0"
    assert aim_identifier(0x0A, b"12345670") == b"]E4"


def test_types_whose_modifier_is_not_fixed_stay_unmapped() -> None:
    for code_type in (0x00, 0x01, 0x02, 0x03, 0x06, 0x08, 0x09, 0x11, 0x2D, 0x25, 0xFF):
        assert aim_identifier(code_type, b"DATA") is None
        assert with_aim(code_type, b"DATA") == b"DATA"


def test_data_with_an_eci_escape_is_not_labelled_as_eci_free() -> None:
    assert aim_identifier(0x1B, b"\\000026ABC") is None
    assert aim_identifier(0x1C, b"A\\B") is None
    assert aim_identifier(0xC1, b"01\\") == b"]d2"  # GS1 types carry no such assumption


def test_an_identifier_the_scanner_sent_itself_is_not_doubled() -> None:
    assert with_aim(0xC1, b"]d2" + GS1) == b"]d2" + GS1
    assert with_aim(0xC1, GS1) == b"]d2" + GS1
    assert with_aim(0x0F, b"]") == b"]C1]"  # a lone ] is data, not an identifier


def test_the_parser_reads_the_prefixed_decodes_as_intended() -> None:
    dm = parse(with_aim(0xC1, GS1))
    assert (dm.symbology, dm.scheme, dm.valid, dm.code) == ("]d2", "gs1", True, GS1_HRI)
    assert parse(with_aim(0x0B, b"6901234567892")).symbology == "]E0"
    plain = parse(with_aim(0x1B, b"81234560000000011234"))
    assert (plain.symbology, plain.scheme, plain.valid) == ("]d1", "cn20", True)


def test_every_mapped_identifier_is_one_the_parser_splits_off() -> None:
    for code_type in CODE_TYPES.values():
        result = parse(code_type.aim + b"81234560000000011234")
        assert result.symbology == code_type.aim.decode()


@given(st.integers(0, 255), st.binary(max_size=64))
def test_with_aim_only_ever_adds_a_known_prefix(code_type: int, data: bytes) -> None:
    out = with_aim(code_type, data)
    assert out.endswith(data)
    added = out[: len(out) - len(data)]
    assert added in {b""} | {c.aim for c in CODE_TYPES.values()}
