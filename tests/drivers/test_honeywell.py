"""Honeywell serial trigger and menu commands, and reply parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.framing import FrameError
from drivers.honeywell import (
    MenuReply,
    MenuReplyFramer,
    MenuReplyItem,
    MenuStatus,
    menu_command,
    menu_query,
    parse_menu_reply,
    trigger,
)

ACK, ENQ, NAK = b"\x06", b"\x05", b"\x15"


def test_serial_trigger_commands_are_syn_t_cr_and_syn_u_cr() -> None:
    assert trigger(True) == bytes([0x16, 0x54, 0x0D])
    assert trigger(False) == bytes([0x16, 0x55, 0x0D])


def test_menu_command_has_prefix_tag_subtag_data_and_ram_terminator() -> None:
    assert menu_command([("232", "BAD", "9")]) == b"\x16M\r232BAD9!"


def test_permanent_menu_command_ends_with_a_period() -> None:
    assert menu_command([("232", "BAD", "9")], permanent=True) == b"\x16M\r232BAD9."


def test_several_menu_commands_are_joined_with_semicolons() -> None:
    cmd = menu_command([("232", "BAD", "9"), ("232", "WRD", "3"), ("BEP", "LVL", "0")])
    assert cmd == b"\x16M\r232BAD9;232WRD3;BEPLVL0!"


def test_menu_query_asks_for_the_current_value_by_default() -> None:
    assert menu_query("CBR", "ENA") == b"\x16M\rCBRENA?!"
    assert menu_query("CBR", query="*") == b"\x16M\rCBR*!"


@pytest.mark.parametrize(
    "tags",
    [
        [],
        [("23", "BAD", "9")],
        [("232", "BA;", "9")],
        [("232", "BAD", "9.")],
        [("232", "BAD", "é")],
    ],
)
def test_malformed_menu_commands_are_refused(tags: list[tuple[str, str, str]]) -> None:
    with pytest.raises(ValueError, match="Failed to"):
        menu_command(tags)


def test_reply_with_ack_before_each_punctuation_is_split_per_command() -> None:
    reply = b"232BAD9" + ACK + b";232WRD3" + ACK + b";BEPLVL0" + ACK + b"!"
    assert parse_menu_reply(reply) == [
        MenuReplyItem("232", "BAD", "9", MenuStatus.ACK),
        MenuReplyItem("232", "WRD", "3", MenuStatus.ACK),
        MenuReplyItem("BEP", "LVL", "0", MenuStatus.ACK),
    ]


def test_reply_statuses_distinguish_invalid_tag_from_bad_data() -> None:
    reply = b"XYZABC1" + ENQ + b";232BAD99" + NAK + b"."
    items = parse_menu_reply(reply)
    assert [i.status for i in items] == [MenuStatus.ENQ, MenuStatus.NAK]
    assert not any(i.ok for i in items)


def test_query_reply_with_commas_reuses_the_tag() -> None:
    # Guide example: cbr?.  ->  CBRENA1[ACK],SSX0[ACK],CK20[ACK],CCT1[ACK],MIN2[ACK]
    reply = (
        b"CBRENA1" + ACK + b",SSX0" + ACK + b",CK20" + ACK + b",CCT1" + ACK + b",MIN2" + ACK + b"."
    )
    items = parse_menu_reply(reply)
    assert [(i.tag, i.subtag, i.data) for i in items] == [
        ("CBR", "ENA", "1"),
        ("CBR", "SSX", "0"),
        ("CBR", "CK2", "0"),
        ("CBR", "CCT", "1"),
        ("CBR", "MIN", "2"),
    ]


def test_recorded_revinf_reply_skips_the_information_text() -> None:
    # Last bytes of a recorded REVINF reply (python_hon_usbhid README): text, then the echo.
    reply = b"Serial Number: N/A\r\nREVINF" + ACK + b"."
    assert parse_menu_reply(reply) == [MenuReplyItem("REV", "INF", "", MenuStatus.ACK)]


def test_reply_echoing_the_prefix_and_missing_the_last_punctuation_is_understood() -> None:
    assert parse_menu_reply(b"\x16M\r232BAD9" + ACK) == [
        MenuReplyItem("232", "BAD", "9", MenuStatus.ACK)
    ]


def test_reply_item_too_short_for_tag_and_subtag_is_an_error() -> None:
    with pytest.raises(ValueError, match="menu reply item"):
        parse_menu_reply(b"AB" + ACK + b".")


def test_framer_emits_one_reply_per_final_terminator() -> None:
    framer = MenuReplyFramer()
    stream = b"232BAD9" + ACK + b";232WRD3" + ACK + b"!" + b"BEPLVL0" + NAK + b"."
    events = framer.feed(stream[:9]) + framer.feed(stream[9:])
    assert [e.ok for e in events if isinstance(e, MenuReply)] == [True, False]
    assert framer.buffered == 0


def test_framer_drops_an_over_long_reply_and_recovers() -> None:
    framer = MenuReplyFramer(max_frame=16)
    events = framer.feed(b"x" * 40 + b"232BAD9" + ACK + b"!")
    assert isinstance(events[0], FrameError)
    assert isinstance(events[-1], MenuReply)
    assert framer.discarded_bytes == sum(e.discarded for e in events if isinstance(e, FrameError))


@given(st.binary(max_size=3000), st.integers(2, 300))
def test_reply_framer_never_raises_and_stays_under_its_cap(data: bytes, cap: int) -> None:
    framer = MenuReplyFramer(max_frame=cap)
    for i in range(0, len(data), 13):
        framer.feed(data[i : i + 13])
        assert framer.buffered <= cap


@given(
    st.lists(
        st.tuples(
            st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=3, max_size=3),
            st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=3, max_size=3),
            st.text("0123456789ABCDEF", max_size=12),
        ),
        min_size=1,
        max_size=5,
    ),
    st.data(),
)
def test_echo_of_any_command_split_anywhere_parses_back_to_its_commands(
    tags: list[tuple[str, str, str]], draw: st.DataObject
) -> None:
    command = menu_command(tags)[3:]
    reply = b"".join(bytes([b]) if b not in b";!" else ACK + bytes([b]) for b in command)
    cut = draw.draw(st.integers(0, len(reply)))
    framer = MenuReplyFramer()
    events = framer.feed(reply[:cut]) + framer.feed(reply[cut:])
    assert len(events) == 1
    assert isinstance(events[0], MenuReply)
    assert [(i.tag, i.subtag, i.data) for i in events[0].items] == tags
