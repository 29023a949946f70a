"""The reply grammar (drivers/tcp_protocol.py): every line it writes parses back exactly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.tcp_protocol import (
    escape_code,
    escape_text,
    format_outcome,
    format_refusal,
    hello_version,
    parse_reply,
    unescape,
)
from scanner_agent.kernel import ScanOutcome, Verdict

VERDICTS = st.sampled_from(list(Verdict))


@settings(max_examples=500)
@given(frame=st.binary(max_size=300), code=st.text(max_size=80), reason=st.text(max_size=120))
def test_any_outcome_formats_to_one_line_that_parses_back(
    frame: bytes, code: str, reason: str
) -> None:
    for verdict in Verdict:
        outcome = ScanOutcome(verdict, code, None if verdict is Verdict.ACCEPTED else reason)
        line = format_outcome(frame, outcome, 256)
        assert line.count(b"\n") == 1
        got = parse_reply(line)
        assert got.echo == frame[:256]
        assert got.accepted == (verdict is Verdict.ACCEPTED)
        assert got.kind == ("accepted" if got.accepted else verdict.value)
        assert got.detail == (code if got.accepted else reason or verdict.value)


@given(data=st.binary())
def test_escaped_fields_hold_no_separator_and_unescape_to_the_bytes(data: bytes) -> None:
    field = escape_code(data)
    assert not set(field) & {0x20, 0x09, 0x0A, 0x0D}
    assert unescape(field) == data


@given(text=st.text())
def test_an_escaped_reason_holds_no_control_byte_and_round_trips(text: str) -> None:
    field = escape_text(text)
    assert all(b >= 0x20 and b != 0x7F for b in field)
    assert unescape(field).decode("utf-8", "surrogatepass") == text


def test_a_refusal_echoes_the_head_of_the_frame() -> None:
    line = format_refusal(b"x" * 10, "too-long", "frame too long\t(10 bytes)", 4)
    assert line == b"NAK xxxx\ttoo-long\tframe too long\\x09(10 bytes)\n"
    assert parse_reply(line).detail == "frame too long\t(10 bytes)"


@pytest.mark.parametrize(
    "line",
    [
        b"ACK 8123\taccepted\t8123",  # no LF
        b"ACK 81 23\taccepted\t8123\n",  # a space in the echo
        b"ACK 8123\tinvalid\tx\n",  # ACK with a refusal kind
        b"NAK 8123\taccepted\tx\n",  # NAK that says accepted
        b"NAK 8123\tinvalid\n",  # a missing field
        b"NAK 8123\tinvalid\tx\ty\n",  # one too many
        b"NAK 8123\tinvalid\ta\\b\n",  # a backslash that is no escape
        b"NAK \\x1D\tinvalid\tx\n",  # upper-case hex
        b"OK 8123\taccepted\t8123\n",
        b"ACK 8123\taccepted\t8123\nACK 8123\taccepted\t8123\n",
    ],
)
def test_lines_off_the_grammar_are_refused(line: bytes) -> None:
    with pytest.raises(ValueError, match=r"reply line|disagree"):
        parse_reply(line)


def test_hello_frames() -> None:
    assert hello_version(b"HELLO") == 0
    assert hello_version(b"HELLO 2") == 2
    assert hello_version(b"HELLO2") is None
    assert hello_version(b"HELLO x") is None
    assert hello_version(b"hello") is None
