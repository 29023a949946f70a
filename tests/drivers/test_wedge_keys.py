"""Keyboard wedge: evdev key events to text, per layout, with GS recovery."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import wedge_keys as k
from drivers.framing import Frame, FrameError
from drivers.wedge_keys import WedgeDecoder

Events = list[tuple[int, int]]


def tap(code: int) -> Events:
    return [(code, 1), (code, 0)]


def with_mod(mod: int, *codes: int) -> Events:
    events: Events = [(mod, 1)]
    for code in codes:
        events += tap(code)
    return [*events, (mod, 0)]


def shift(*codes: int) -> Events:
    return with_mod(k.KEY_LEFTSHIFT, *codes)


def altgr(*codes: int) -> Events:
    return with_mod(k.KEY_RIGHTALT, *codes)


ENTER = tap(k.KEY_ENTER)
CTRL_RIGHTBRACE = with_mod(k.KEY_LEFTCTRL, k.KEY_RIGHTBRACE)
ALT_0029 = [
    (k.KEY_LEFTALT, 1),
    *tap(k.KEY_KP0),
    *tap(k.KEY_KP0),
    *tap(k.KEY_KP2),
    *tap(k.KEY_KP9),
    (k.KEY_LEFTALT, 0),
]

# US positions of digits and letters, written out independently of the module.
DIGIT_KEYS = {str((i + 1) % 10): code for i, code in enumerate(range(2, 12))}
US_LETTERS = dict(
    zip(
        "qwertyuiopasdfghjklzxcvbnm",
        [*range(16, 26), *range(30, 39), *range(44, 51)],
        strict=True,
    )
)


def type_us(text: str) -> Events:
    events: Events = []
    for char in text:
        if char in DIGIT_KEYS:
            events += tap(DIGIT_KEYS[char])
        elif char.lower() in US_LETTERS:
            code = US_LETTERS[char.lower()]
            events += shift(code) if char.isupper() else tap(code)
        elif char == "\x1d":
            events += CTRL_RIGHTBRACE
        else:
            raise AssertionError(char)
    return events


def decode(layout: str, events: Events) -> list[Frame | FrameError]:
    return WedgeDecoder(layout).feed(events)


def test_us_letters_digits_and_shifted_symbols() -> None:
    events = shift(k.KEY_A) + tap(k.KEY_B) + tap(k.KEY_1) + shift(k.KEY_1) + shift(k.KEY_2)
    assert decode("us", events + ENTER) == [Frame(b"Ab1!@")]


def test_uk_layout_differs_from_us_where_it_should() -> None:
    events = shift(k.KEY_2) + shift(k.KEY_3) + tap(k.KEY_BACKSLASH) + tap(k.KEY_102ND)
    events += shift(k.KEY_APOSTROPHE)
    assert decode("uk", events + ENTER) == [Frame('"£#\\@'.encode())]
    assert decode("gb", events + ENTER) == decode("uk", events + ENTER)


def test_german_qwertz_swaps_y_and_z_and_uses_altgr() -> None:
    events = tap(k.KEY_Y) + tap(k.KEY_Z) + shift(k.KEY_7) + altgr(k.KEY_Q) + tap(k.KEY_SEMICOLON)
    assert decode("de", events + ENTER) == [Frame("zy/@ö".encode())]


def test_german_dead_circumflex_composes_or_stands_alone_before_space() -> None:
    events = tap(k.KEY_GRAVE) + tap(k.KEY_E) + tap(k.KEY_GRAVE) + tap(k.KEY_SPACE)
    assert decode("de", events + ENTER) == [Frame("ê^".encode())]


def test_french_azerty_digit_row_needs_shift_for_digits() -> None:
    events = tap(k.KEY_Q) + tap(k.KEY_1) + shift(k.KEY_1) + tap(k.KEY_2) + shift(k.KEY_0)
    events += altgr(k.KEY_0) + tap(k.KEY_M) + tap(k.KEY_SEMICOLON)
    assert decode("fr", events + ENTER) == [Frame("a&1é0@,m".encode())]


@pytest.mark.parametrize("layout", ["us", "uk", "de", "fr"])
def test_ctrl_with_the_key_right_of_p_gives_gs_on_every_layout(layout: str) -> None:
    events = shift(k.KEY_1) if layout == "fr" else tap(k.KEY_1)
    assert decode(layout, events + CTRL_RIGHTBRACE + events + ENTER) == [Frame(b"1\x1d1")]


@pytest.mark.parametrize(("layout", "bracket_key"), [("de", k.KEY_9), ("fr", k.KEY_MINUS)])
def test_ctrl_with_the_layouts_own_bracket_key_also_gives_gs(layout: str, bracket_key: int) -> None:
    events = [(k.KEY_LEFTCTRL, 1), (k.KEY_RIGHTALT, 1), *tap(bracket_key), (k.KEY_RIGHTALT, 0)]
    events += [(k.KEY_LEFTCTRL, 0)]
    assert decode(layout, events + ENTER) == [Frame(b"\x1d")]


@pytest.mark.parametrize("layout", ["us", "uk", "de", "fr"])
def test_alt_0029_on_the_keypad_gives_gs_on_every_layout(layout: str) -> None:
    assert decode(layout, ALT_0029 + ENTER) == [Frame(b"\x1d")]


def test_alt_codes_above_127_follow_the_windows_code_pages() -> None:
    alt_0233 = [(k.KEY_LEFTALT, 1), *tap(k.KEY_KP0), *tap(k.KEY_KP2), *tap(k.KEY_KP3)]
    alt_0233 += [*tap(k.KEY_KP3), (k.KEY_LEFTALT, 0)]
    alt_130 = [(k.KEY_LEFTALT, 1), *tap(k.KEY_KP1), *tap(k.KEY_KP3), *tap(k.KEY_KP0)]
    alt_130 += [(k.KEY_LEFTALT, 0)]
    assert decode("us", alt_0233 + alt_130 + ENTER) == [Frame("éé".encode())]


def test_ctrl_letters_give_ascii_control_codes() -> None:
    events = with_mod(k.KEY_RIGHTCTRL, k.KEY_D) + with_mod(k.KEY_LEFTCTRL, k.KEY_6)
    assert decode("us", events + ENTER) == [Frame(b"\x04")]


def test_gs1_code_typed_on_us_layout_keeps_its_separators() -> None:
    text = "0106901234567890172501011ABC123\x1d21XYZ"
    assert decode("us", type_us(text) + ENTER) == [Frame(text.encode())]


def test_caps_lock_flips_letters_only_and_shift_flips_them_back() -> None:
    events = (
        tap(k.KEY_CAPSLOCK) + tap(k.KEY_A) + shift(k.KEY_B) + tap(k.KEY_1) + tap(k.KEY_CAPSLOCK)
    )
    events += tap(k.KEY_C)
    assert decode("us", events + ENTER) == [Frame(b"Ab1c")]


def test_caps_lock_leaves_french_accented_digit_keys_alone() -> None:
    events = tap(k.KEY_CAPSLOCK) + tap(k.KEY_2) + tap(k.KEY_Q)
    assert decode("fr", events + ENTER) == [Frame("éA".encode())]


def test_keypad_digits_follow_num_lock() -> None:
    decoder = WedgeDecoder("de")
    events = tap(k.KEY_KP1) + tap(k.KEY_KPDOT) + tap(k.KEY_NUMLOCK) + tap(k.KEY_KP2)
    assert decoder.feed(events + tap(k.KEY_KPENTER)) == [Frame(b"1,")]
    assert decoder.numlock is False


def test_key_repeat_and_key_up_events_produce_nothing() -> None:
    events = [(k.KEY_A, 1), (k.KEY_A, 2), (k.KEY_A, 2), (k.KEY_A, 0), (k.KEY_B, 0)]
    assert decode("us", events + ENTER) == [Frame(b"a")]


def test_keypad_enter_ends_a_frame_and_empty_frames_are_skipped() -> None:
    events = ENTER + tap(k.KEY_A) + tap(k.KEY_KPENTER) + ENTER
    assert decode("us", events) == [Frame(b"a")]


def test_text_without_enter_waits() -> None:
    decoder = WedgeDecoder("us")
    assert decoder.feed(tap(k.KEY_A)) == []
    assert decoder.buffered == 1
    assert decoder.feed(ENTER) == [Frame(b"a")]


def test_over_long_frame_is_dropped_until_enter_and_reported() -> None:
    decoder = WedgeDecoder("us", max_frame=3)
    events = decoder.feed(tap(k.KEY_A) * 5 + ENTER + tap(k.KEY_B) + ENTER)
    assert events == [FrameError("frame too long (over 3 bytes)", 4), Frame(b"b")]
    assert decoder.discarded_bytes == 5


def test_unknown_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="keyboard layout"):
        WedgeDecoder("dvorak")


@given(
    st.sampled_from(["us", "uk", "de", "fr"]),
    st.lists(st.tuples(st.integers(0, 255), st.integers(-1, 3)), max_size=400),
    st.integers(1, 64),
)
def test_arbitrary_events_never_raise_and_stay_under_the_cap(
    layout: str, events: Events, cap: int
) -> None:
    decoder = WedgeDecoder(layout, max_frame=cap)
    for i in range(0, len(events), 17):
        for event in decoder.feed(events[i : i + 17]):
            if isinstance(event, Frame):
                assert len(event.data) <= cap
        assert decoder.buffered <= cap


@given(st.text("0123456789abcdefXYZ\x1d", min_size=1, max_size=60), st.data())
def test_typed_code_split_at_any_event_decodes_identically(text: str, draw: st.DataObject) -> None:
    events = type_us(text) + ENTER
    cut = draw.draw(st.integers(0, len(events)))
    decoder = WedgeDecoder("us")
    assert decoder.feed(events[:cut]) + decoder.feed(events[cut:]) == [Frame(text.encode())]
