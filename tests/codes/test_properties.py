"""Properties of ``parse_scan`` that must hold for any input at all."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from scanner_agent.codes import ScanResult, Scheme, parse_many, parse_scan

AIM_PREFIXES = st.sampled_from(["", "]C0", "]C1", "]d1", "]d2", "]Q1", "]Q3", "]E0", "]e0"])
TERMINATORS = st.sampled_from(["", "\r", "\n", "\r\n", "\t"])


def assert_consistent(result: ScanResult) -> None:
    assert isinstance(result, ScanResult)
    assert result.valid is (result.reason is None)
    assert (result.scheme is not None) is result.valid
    assert (result.code is not None) is result.valid
    if result.reason is not None:
        assert result.reason
        assert "\n" not in result.reason
        assert "\r" not in result.reason


@given(st.binary(max_size=300))
@example(b"")
@example(b"\xff")
@example(b"]")
@example(b"]Y")
@example(b"]Y9")
def test_arbitrary_bytes_never_raise_and_give_a_consistent_result(data: bytes) -> None:
    assert_consistent(parse_scan(data))


@given(st.text(max_size=300))
@example("http://[")
@example("(")
@example("()")
@example("(01)")
@example("MA.")
@example("\x1d")
def test_arbitrary_text_never_raises_and_gives_a_consistent_result(data: str) -> None:
    result = parse_scan(data)
    assert_consistent(result)
    assert result.raw == data


@given(AIM_PREFIXES, st.text(alphabet="0123456789()\x1d/.:ABCMahtps", max_size=80), TERMINATORS)
def test_code_like_text_never_raises(prefix: str, body: str, suffix: str) -> None:
    assert_consistent(parse_scan(prefix + body + suffix))


@given(st.from_regex(r"8[0-9]{19}", fullmatch=True), AIM_PREFIXES, TERMINATORS)
def test_any_20_digits_starting_with_8_are_valid_cn20(
    digits: str, prefix: str, suffix: str
) -> None:
    result = parse_scan(prefix + digits + suffix)
    assert result.valid
    assert result.scheme is Scheme.CN20
    assert result.code == digits
    assert result.product == digits[:7]
    assert result.serial == digits[7:16]
    assert result.symbology == (prefix or None)


@given(st.from_regex(r"8[0-9]{19}", fullmatch=True))
def test_cn20_as_bytes_gives_the_same_result_as_text(digits: str) -> None:
    assert parse_scan(digits.encode()) == parse_scan(digits)


@given(st.from_regex(r"[0-79][0-9]{19}", fullmatch=True))
def test_20_digits_not_starting_with_8_are_never_cn20(digits: str) -> None:
    assert parse_scan(digits).scheme is not Scheme.CN20


CN20_LIKE = st.builds(
    lambda head, digits, tail: (head + digits + tail).encode(),
    st.sampled_from(["", "8", "]C1", " ", "9"]),
    st.text(alphabet="0123456789", min_size=17, max_size=21),
    TERMINATORS,
)


@given(st.lists(st.one_of(CN20_LIKE, st.binary(max_size=40), st.text(max_size=40)), max_size=30))
@example([b"80000000000000000001", b"8000000000000000000\xb2", "80000000000000000001"])
def test_parse_many_gives_exactly_what_parse_scan_gives(frames: list[bytes | str]) -> None:
    assert parse_many(frames) == [parse_scan(f) for f in frames]
