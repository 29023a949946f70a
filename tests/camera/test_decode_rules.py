"""The misread rules, one case each, on reads as the libraries return them."""

from __future__ import annotations

from drivers.decode_rules import RULES, gtin_check_ok, merge
from drivers.symbols import Symbol


def read(
    text: str,
    quad: tuple[tuple[int, int], ...],
    *,
    fmt: str = "EAN13",
    decoder: str = "zxing",
    symbology: str = "]E0",
    raw: bytes = b"",
    lines: int = 0,
) -> Symbol:
    return Symbol(text, text.encode(), symbology, fmt, quad, decoder, raw, lines)  # type: ignore[arg-type]


WIDE = ((50, 40), (240, 40), (240, 130), (50, 130))
"""An EAN-13 read across its whole bar height."""


def test_a_thin_zxing_read_along_a_thick_one_is_dropped_and_stacked_codes_are_kept() -> None:
    # Measured on ean13-1/35.webp: the misread spans 3 px across the bars, the good read 117.
    thin = read("7034759003930", ((70, 406), (70, 68), (67, 68), (67, 406)))
    good = read("5030159003930", ((219, 408), (219, 65), (102, 68), (102, 406)))
    kept, rejected, _ = merge([thin, good])
    assert kept == [good]
    assert [(r.symbol, r.rule, r.kept) for r in rejected] == [(thin, "thin-read", good)]
    upper = read("5030159003930", ((10, 10), (300, 10), (300, 90), (10, 90)))
    lower = read("4006381333931", ((10, 120), (300, 120), (300, 200), (10, 200)))
    assert merge([upper, lower])[0] == [upper, lower]


def test_a_zbar_read_of_half_the_symbol_is_a_short_read() -> None:
    # worn-045: ZBar decoded the left half only, a wrong number with a right check digit.
    zx = read("4564342293804", ((47, 30), (215, 30), (215, 126), (47, 126)))
    zb = read(
        "0016100004411", ((47, 40), (134, 40), (134, 123), (47, 123)), decoder="pyzbar", lines=21
    )
    kept, rejected, _ = merge([zx, zb])
    assert kept == [zx]
    assert rejected[0].rule == "short-read"


def test_zbar_wins_with_many_scan_lines_and_loses_with_few() -> None:
    zx = read("0864706431212", WIDE)
    strong = read("1863780437218", WIDE, decoder="pyzbar", lines=43)  # worn-159: ZBar right
    weak = read("8382734729801", WIDE, decoder="pyzbar", lines=5)  # worn-053: ZBar wrong
    assert merge([zx, strong])[0] == [strong]
    assert merge([zx, weak])[0] == [zx]
    assert {r.rule for r in merge([zx, weak])[1]} == {"line-support"}


def test_a_text_both_libraries_read_beats_one_only_zbar_read() -> None:
    both_zx = read("2635951040553", WIDE)
    both_zb = read(
        "2635951040553", ((53, 101), (240, 101), (240, 107), (53, 107)), decoder="pyzbar", lines=5
    )
    only_zb = read("1635211040553", WIDE, decoder="pyzbar", lines=15)
    kept, rejected, _ = merge([both_zx, both_zb, only_zb])
    assert kept == [both_zx]
    assert rejected[0].rule == "agreement"


def test_zbar_s_guessed_character_set_is_the_same_symbol_and_zxing_s_text_is_kept() -> None:
    # qrcode-2/17.webp: half-width katakana in Shift-JIS, which ZBar took for GB 18030.
    sjis = "ﾃﾞｻﾞｲﾝQR".encode("shift_jis")
    zx = read("ﾃﾞｻﾞｲﾝQR", WIDE, fmt="QRCode", symbology="]Q1", raw=sjis)
    zb = read("蹬靼翌QR", WIDE, fmt="QRCode", decoder="pyzbar")
    kept, rejected, _ = merge([zx, zb])
    assert kept == [zx]
    assert [r.rule for r in rejected] == ["charset"]
    # qrcode-2/29.webp: the Shift-JIS backslash shown as a yen sign.
    yen = read("http\\://x", WIDE, fmt="QRCode", raw=b"http\\://x")
    zb_yen = read("http¥://x", WIDE, fmt="QRCode", decoder="pyzbar")
    assert merge([yen, zb_yen])[0] == [yen]
    # code128-1/6.png: ZBar ignores FNC4 (extended ASCII).
    fnc4 = read("óó1234", WIDE, fmt="Code128", symbology="]C0", raw="óó1234".encode("latin-1"))
    zb_fnc4 = read("ss1234", WIDE, fmt="Code128", decoder="pyzbar")
    kept, rejected, _ = merge([fnc4, zb_fnc4])
    assert kept == [fnc4]
    assert [r.rule for r in rejected] == ["charset"]


def test_a_wrong_gtin_check_digit_loses_to_a_right_one() -> None:
    good = read("0109504000059101", WIDE, fmt="DataMatrix", symbology="]d2")
    bad = read("0109504000059108", WIDE, fmt="DataMatrix", symbology="]d2", decoder="pyzbar")
    assert gtin_check_ok(good) is True
    assert gtin_check_ok(bad) is False
    kept, rejected, _ = merge([bad, good])
    assert kept == [good]
    assert rejected[0].rule == "check-digit"


def test_two_matrix_codes_one_inside_the_other_are_two_symbols() -> None:
    # qrcode-2/16.webp: a "double QR", both read by zxing-cpp.
    outer = read("[外側QRコード]", ((0, 0), (260, 0), (260, 260), (0, 260)), fmt="QRCode")
    inner = read("[内側QRコード]", ((60, 60), (200, 60), (200, 200), (60, 200)), fmt="QRCode")
    assert merge([outer, inner]) == ([outer, inner], [], [])


def test_more_passes_outvote_fewer_and_an_even_split_is_kept_and_reported() -> None:
    a = read("5582589615998", ((52, 40), (258, 40), (258, 87), (52, 87)))
    b = read("9582509615998", ((53, 41), (259, 41), (259, 47), (53, 47)))
    b2 = read(
        "9582509615998", ((53, 150), (258, 150), (258, 151), (53, 151)), decoder="zxing-upscale"
    )
    kept, rejected, contested = merge([a, b, b2])
    assert kept == [b]
    assert rejected[0].rule == "outvoted"
    assert set(contested) == {a, b}  # settled by votes only: the decoder looks again first
    c = read("1111111111116", ((52, 40), (258, 40), (258, 87), (52, 87)))
    d = read("2222222222222", ((52, 40), (258, 40), (258, 87), (52, 87)))
    assert merge([c, d]) == ([c, d], [], [c, d])


def test_every_rule_has_a_test_here() -> None:
    import inspect
    import sys

    source = inspect.getsource(sys.modules[__name__])
    assert all(f'"{rule}"' in source for rule in RULES if rule != "thin-read")
    assert "thin-read" in source
