"""SSI packets, framer and session, checked against hand-computed bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import ssi
from drivers.framing import FrameError
from drivers.serial_protocols import SsiHost
from drivers.ssi import (
    CommandAcked,
    CommandFailed,
    Decode,
    NakCause,
    Opcode,
    Received,
    ReplyContinued,
    SsiError,
    SsiErrorKind,
    SsiFramer,
    SsiPacket,
    SsiSession,
    Write,
)


def by_hand(opcode: int, source: int, status: int, data: bytes = b"") -> bytes:
    """Build a packet independently of the module: sum the bytes one by one."""
    body = [4 + len(data), opcode, source, status, *data]
    total = 0
    for byte in body:
        total += byte
    check = 0x10000 - total
    return bytes([*body, check >> 8, check & 0xFF])


# Vectors worked out on paper (sum of the bytes before the checksum, then 0x10000 - sum).
# CMD_ACK from host:   04+D0+04+00 = 0xD8        -> 0xFF28
# CMD_NAK RESEND:      05+D1+04+00+01 = 0xDB     -> 0xFF25
# LED_ON (decode LED): 05+E7+04+00+01 = 0xF1     -> 0xFF0F
# BEEP code 0:         05+E6+04+00+00 = 0xEF     -> 0xFF11
# START_DECODE:        04+E4+04+00 = 0xEC        -> 0xFF14
# DECODE_DATA "NR" from decoder, type 0x01:
#                      07+F3+00+00+01+4E+52 = 0x19B -> 0xFE65
ACK = bytes.fromhex("04 D0 04 00 FF 28")
NAK_RESEND = bytes.fromhex("05 D1 04 00 01 FF 25")
NR_DECODE = bytes.fromhex("07 F3 00 00 01 4E 52 FE 65")


@pytest.mark.parametrize(
    ("built", "expected"),
    [
        (ssi.cmd_ack(), ACK),
        (ssi.cmd_nak(NakCause.RESEND), NAK_RESEND),
        (ssi.led_on(), bytes.fromhex("05 E7 04 00 01 FF 0F")),
        (ssi.beep(0), bytes.fromhex("05 E6 04 00 00 FF 11")),
        (ssi.start_decode(), bytes.fromhex("04 E4 04 00 FF 14")),
        (ssi.stop_decode(), by_hand(0xE5, 4, 0)),
        (ssi.led_off(), by_hand(0xE8, 4, 0, b"\x01")),
        (ssi.scan_enable(), by_hand(0xE9, 4, 0)),
        (ssi.scan_disable(), by_hand(0xEA, 4, 0)),
        (ssi.cmd_nak(NakCause.BAD_CONTEXT), by_hand(0xD1, 4, 0, b"\x02")),
        (ssi.cmd_nak(NakCause.DENIED), by_hand(0xD1, 4, 0, b"\x06")),
        (ssi.cmd_nak(NakCause.CANCEL), by_hand(0xD1, 4, 0, b"\x0a")),
    ],
)
def test_host_commands_match_hand_computed_bytes(built: bytes, expected: bytes) -> None:
    assert built == expected


def test_decoder_packet_built_by_hand_matches_published_no_read_vector() -> None:
    assert by_hand(0xF3, 0, 0, b"\x01NR") == NR_DECODE


def test_encode_packet_sets_source_and_status() -> None:
    assert ssi.encode_packet(0xF3, b"\x01NR", source=ssi.DECODER) == NR_DECODE
    assert ssi.encode_packet(0xE4, status=ssi.STATUS_RETRANSMIT) == by_hand(0xE4, 4, 1)


def test_encode_packet_refuses_more_data_than_one_length_byte_can_count() -> None:
    assert len(ssi.encode_packet(0xF3, bytes(251))) == 257
    with pytest.raises(ValueError, match="at most 251"):
        ssi.encode_packet(0xF3, bytes(252))


def test_encode_packet_refuses_values_that_are_not_bytes() -> None:
    with pytest.raises(ValueError, match="opcode"):
        ssi.encode_packet(0x100)
    with pytest.raises(ValueError, match="beep code"):
        ssi.beep(-1)


def test_wakeup_prefix_is_a_single_nul_before_the_packet() -> None:
    assert ssi.with_wakeup(ACK) == b"\x00" + ACK


def test_param_send_starts_with_no_beep_and_lists_number_value_pairs() -> None:
    # beep 0xFF, param 0xEE = 1 (decode data packet format): 07+C6+04+00+FF+EE+01
    assert ssi.param_send([(0xEE, 1)]) == by_hand(0xC6, 4, 0, b"\xff\xee\x01")


def test_param_send_permanent_sets_the_change_type_bit() -> None:
    assert ssi.param_send([(0x9F, 0)], permanent=True) == by_hand(0xC6, 4, 0x08, b"\xff\x9f\x00")


@pytest.mark.parametrize(
    ("number", "encoded"),
    [
        (0, b"\x00"),
        (0xEF, b"\xef"),
        (256, b"\xf0\x00"),
        (298, b"\xf0\x2a"),
        (576, b"\xf1\x40"),
        (0x2FF, b"\xf1\xff"),
        (768, b"\xf2\x00"),
        (1023, b"\xf2\xff"),
    ],
)
def test_parameter_numbers_above_255_use_the_extended_prefixes(number: int, encoded: bytes) -> None:
    assert ssi.param_number_bytes(number) == encoded


@pytest.mark.parametrize("number", [240, 255, 1024, -1])
def test_parameter_numbers_that_collide_with_prefixes_or_exceed_1023_are_refused(
    number: int,
) -> None:
    with pytest.raises(ValueError, match="parameter number"):
        ssi.param_number_bytes(number)


# --- framer -------------------------------------------------------------------


def test_framer_decodes_a_decoder_packet() -> None:
    assert SsiFramer().feed(NR_DECODE) == [SsiPacket(0xF3, 0, 0, b"\x01NR")]


def test_framer_resynchronises_after_garbage_and_reports_it_once() -> None:
    framer = SsiFramer()
    events = framer.feed(b"\xff\x01\x02junk" + NR_DECODE)
    assert events[-1] == SsiPacket(0xF3, 0, 0, b"\x01NR")
    errors = [e for e in events if isinstance(e, SsiError)]
    assert [e.kind for e in errors] == [SsiErrorKind.GARBAGE]
    assert errors[0].discarded == 7
    assert framer.discarded_bytes == 7


def test_framer_reports_a_bad_checksum_once_and_still_finds_the_next_packet() -> None:
    corrupted = bytearray(NR_DECODE)
    corrupted[5] ^= 0x20  # 'N' -> 'n'
    framer = SsiFramer()
    events = framer.feed(bytes(corrupted) + NR_DECODE)
    kinds = [e.kind for e in events if isinstance(e, SsiError)]
    assert kinds.count(SsiErrorKind.CHECKSUM) == 1
    assert events[-1] == SsiPacket(0xF3, 0, 0, b"\x01NR")
    assert framer.bad_checksums == 1
    assert framer.discarded_bytes == len(corrupted)


def test_framer_waits_for_the_rest_of_a_packet() -> None:
    framer = SsiFramer()
    assert framer.feed(NR_DECODE[:4]) == []
    assert framer.buffered == 4
    assert framer.feed(NR_DECODE[4:]) == [SsiPacket(0xF3, 0, 0, b"\x01NR")]
    assert framer.buffered == 0


def test_framer_flush_drops_a_partial_packet_and_reports_it() -> None:
    framer = SsiFramer()
    framer.feed(NR_DECODE[:5])
    assert framer.flush() == [SsiError(SsiErrorKind.GARBAGE, "5 bytes outside any SSI packet", 5)]
    assert framer.buffered == 0


@given(st.binary(max_size=2000))
def test_framer_never_raises_and_never_buffers_more_than_one_packet(data: bytes) -> None:
    framer = SsiFramer()
    events = framer.feed(data)
    assert framer.buffered <= ssi.MAX_PACKET_SIZE
    packets = sum(e.size for e in events if isinstance(e, SsiPacket))
    dropped = sum(e.discarded for e in events if isinstance(e, SsiError))
    assert packets + dropped + framer.buffered == len(data)
    assert dropped == framer.discarded_bytes


@given(
    st.integers(0, 255),
    st.sampled_from([0, 1, 2, 3, 8]),
    st.binary(max_size=251),
    st.data(),
)
def test_a_valid_packet_split_at_any_point_decodes_identically(
    opcode: int, status: int, data: bytes, draw: st.DataObject
) -> None:
    packet = by_hand(opcode, 0, status, data)
    cut = draw.draw(st.integers(0, len(packet)))
    framer = SsiFramer()
    events = framer.feed(packet[:cut]) + framer.feed(packet[cut:])
    assert events == [SsiPacket(opcode, 0, status, data)]


@given(st.lists(st.binary(max_size=300), max_size=8))
def test_framer_fed_in_chunks_finds_every_packet_between_garbage_that_cannot_start_one(
    chunks: list[bytes],
) -> None:
    # Bytes 0..3 can never be a length, so they are pure garbage.
    garbage = [bytes(b % 4 for b in c) for c in chunks]
    stream = b"".join(g + NR_DECODE for g in garbage)
    framer = SsiFramer()
    events = [e for i in range(0, len(stream), 7) for e in framer.feed(stream[i : i + 7])]
    assert [e for e in events if isinstance(e, SsiPacket)] == [
        SsiPacket(0xF3, 0, 0, b"\x01NR")
    ] * len(chunks)


# --- session ------------------------------------------------------------------


def writes(events: list[ssi.SessionEvent]) -> list[bytes]:
    return [e.data for e in events if isinstance(e, Write)]


def test_session_acks_a_decode_and_returns_it() -> None:
    session = SsiSession()
    events = session.receive(NR_DECODE)
    assert writes(events) == [ACK]
    assert Decode(0x01, b"NR") in events


def test_session_joins_multipacket_decodes_and_acks_each_packet() -> None:
    first = by_hand(0xF3, 0, ssi.STATUS_CONTINUATION, b"\x1b" + b"0104" * 10)
    last = by_hand(0xF3, 0, 0, b"\x1b" + b"\x1d21ABC")
    session = SsiSession()
    events = session.receive(first) + session.receive(last)
    assert writes(events) == [ACK, ACK]
    assert [e for e in events if isinstance(e, Decode)] == [
        Decode(0x1B, b"0104" * 10 + b"\x1d21ABC")
    ]
    assert session.buffered == 0


def test_session_naks_a_bad_checksum_with_resend_and_counts_it() -> None:
    corrupted = bytearray(NR_DECODE)
    corrupted[-1] ^= 0xFF
    session = SsiSession()
    events = session.receive(bytes(corrupted))
    assert writes(events) == [NAK_RESEND]
    assert session.bad_checksums == 1
    assert not [e for e in events if isinstance(e, Decode)]


def test_session_acks_a_resent_packet_again_without_joining_it_twice() -> None:
    first = by_hand(0xF3, 0, ssi.STATUS_CONTINUATION, b"\x03AB")
    resent = by_hand(0xF3, 0, ssi.STATUS_CONTINUATION | ssi.STATUS_RETRANSMIT, b"\x03AB")
    last = by_hand(0xF3, 0, 0, b"\x03CD")
    session = SsiSession()
    events = session.receive(first) + session.receive(resent) + session.receive(last)
    assert writes(events) == [ACK, ACK, ACK]
    assert [e for e in events if isinstance(e, Decode)] == [Decode(0x03, b"ABCD")]


def test_session_reports_the_ack_of_a_command() -> None:
    session = SsiSession()
    assert session.send(ssi.beep(0)) == ssi.beep(0)
    assert session.pending == Opcode.BEEP
    events = session.receive(by_hand(0xD0, 0, 0))
    assert events == [CommandAcked(Opcode.BEEP)]
    assert session.pending is None


def test_session_resends_a_command_with_the_retransmit_bit_on_nak_resend() -> None:
    session = SsiSession(max_retries=2)
    session.send(ssi.start_decode())
    nak = by_hand(0xD1, 0, 0, b"\x01")
    assert writes(session.receive(nak)) == [by_hand(0xE4, 4, 1)]
    assert writes(session.receive(nak)) == [by_hand(0xE4, 4, 1)]
    events = session.receive(nak)
    assert isinstance(events[0], CommandFailed)
    assert events[0].opcode == Opcode.START_DECODE
    assert session.retransmits == 2
    assert session.pending is None


def test_session_fails_a_command_the_decoder_denies() -> None:
    session = SsiSession()
    session.send(ssi.param_send([(0xEE, 1)]))
    events = session.receive(by_hand(0xD1, 0, 0, b"\x06"))
    assert events == [CommandFailed(Opcode.PARAM_SEND, "NAK DENIED", 6)]


def test_session_timeout_resends_then_gives_up() -> None:
    session = SsiSession(max_retries=1)
    session.send(ssi.scan_enable())
    assert writes(session.timeout()) == [by_hand(0xE9, 4, 1)]
    events = session.timeout()
    assert isinstance(events[0], CommandFailed)
    assert session.timeout() == []


def test_session_refuses_a_second_command_while_one_waits() -> None:
    session = SsiSession()
    session.send(ssi.beep(0))
    with pytest.raises(RuntimeError, match="still waiting"):
        session.send(ssi.beep(1))


def test_session_treats_a_reply_packet_as_the_answer_to_its_request() -> None:
    session = SsiSession()
    session.send(ssi.encode_packet(Opcode.REQUEST_REVISION))
    reply = by_hand(0xA4, 0, 0, b"NBRFMAAC")
    events = session.receive(reply)
    assert writes(events) == [ACK]
    assert CommandAcked(Opcode.REQUEST_REVISION, SsiPacket(0xA4, 0, 0, b"NBRFMAAC")) in events


def test_session_joins_a_multipacket_reply_before_acknowledging_its_request() -> None:
    session = SsiSession()
    session.send(ssi.encode_packet(Opcode.PARAM_REQUEST, b"\xfe"))  # all parameters
    first = by_hand(0xC6, 0, ssi.STATUS_CONTINUATION, b"\xff\x01\x01")
    resent = by_hand(0xC6, 0, ssi.STATUS_CONTINUATION | ssi.STATUS_RETRANSMIT, b"\xff\x01\x01")
    last = by_hand(0xC6, 0, 0, b"\x02\x00")
    events = session.receive(first) + session.receive(resent)
    assert writes(events) == [ACK, ACK]
    assert not [e for e in events if isinstance(e, CommandAcked | Received)]
    assert session.pending == Opcode.PARAM_REQUEST
    events = session.receive(last)
    assert events == [
        Write(ACK),
        CommandAcked(Opcode.PARAM_REQUEST, SsiPacket(0xC6, 0, 0, b"\xff\x01\x01\x02\x00")),
    ]
    assert session.pending is None


def test_session_reports_each_continued_reply_packet_so_the_timer_restarts() -> None:
    session = SsiSession()
    session.send(ssi.encode_packet(Opcode.REQUEST_REVISION))
    events = session.receive(by_hand(0xA4, 0, ssi.STATUS_CONTINUATION, b"NBRF"))
    assert events == [Write(ACK), ReplyContinued(Opcode.REQUEST_REVISION)]
    events = session.receive(by_hand(0xA4, 0, 0, b"MAAC"))
    assert not [e for e in events if isinstance(e, ReplyContinued)]
    assert session.pending is None


class FakeTimers:
    """A fake clock for :class:`SsiHost`: ``call_later`` records, :meth:`advance` fires."""

    def __init__(self) -> None:
        self.now = 0.0
        self._armed: list[FakeTimers.Handle] = []

    class Handle:
        def __init__(self, when: float, callback: Callable[[], None]) -> None:
            self.when = when
            self.callback = callback
            self.cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimers.Handle:
        handle = FakeTimers.Handle(self.now + delay, callback)
        self._armed.append(handle)
        return handle

    @property
    def deadlines(self) -> list[float]:
        return [h.when for h in self._armed if not h.cancelled]

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [h for h in self._armed if not h.cancelled and h.when <= self.now]
        self._armed = [h for h in self._armed if h not in due]
        for handle in due:
            handle.callback()


async def test_ssi_host_restarts_the_response_timer_at_each_reply_packet() -> None:
    """A reply spread over packets 1.5 s apart takes 4.5 s in all: longer than the 2 s
    time-out, yet no packet is late, so the request must not be resent mid-reply."""
    clock = FakeTimers()
    written: list[bytes] = []

    async def write(data: bytes) -> None:
        written.append(data)

    host = SsiHost(write, on_error=pytest.fail, response_timeout=2.0, call_later=clock.call_later)
    request = ssi.encode_packet(Opcode.PARAM_REQUEST, b"\xfe")
    await host.command(request)
    assert written == [request]
    assert clock.deadlines == [2.0]
    for index, data in enumerate([b"\xff\x01\x01", b"\x02\x00"]):
        clock.advance(1.5)
        await host.receive(by_hand(0xC6, 0, ssi.STATUS_CONTINUATION, data))
        assert clock.deadlines == [1.5 * (index + 1) + 2.0]
    clock.advance(1.5)  # 4.5 s after the request: past the first deadline, not the last
    assert host.session.pending == Opcode.PARAM_REQUEST
    assert host.session.retransmits == 0
    await host.receive(by_hand(0xC6, 0, 0, b"\x03\x01"))
    assert host.acked == [Opcode.PARAM_REQUEST]
    assert clock.deadlines == []
    assert written == [request, ACK, ACK, ACK]  # no resend of the request
    assert host.failed == []


async def test_ssi_host_still_resends_when_the_reply_stops_half_way() -> None:
    clock = FakeTimers()
    written: list[bytes] = []

    async def write(data: bytes) -> None:
        written.append(data)

    host = SsiHost(write, on_error=pytest.fail, response_timeout=2.0, call_later=clock.call_later)
    await host.command(ssi.encode_packet(Opcode.REQUEST_REVISION))
    clock.advance(1.5)
    await host.receive(by_hand(0xA4, 0, ssi.STATUS_CONTINUATION, b"NBRF"))
    clock.advance(1.9)
    assert host.session.retransmits == 0
    clock.advance(0.2)  # 2 s after the last reply packet: silence
    assert host.session.retransmits == 1
    await asyncio.sleep(0)  # the resend is written by a task
    assert written[-1] == ssi.encode_packet(Opcode.REQUEST_REVISION, status=ssi.STATUS_RETRANSMIT)
    host.close()


def test_session_fails_a_request_whose_multipacket_reply_exceeds_the_cap() -> None:
    session = SsiSession(max_decode=4)
    session.send(ssi.encode_packet(Opcode.REQUEST_REVISION))
    events = session.receive(by_hand(0xA4, 0, ssi.STATUS_CONTINUATION, b"NBRF"))
    events += session.receive(by_hand(0xA4, 0, 0, b"MAAC"))
    assert writes(events) == [ACK, ACK]
    failed = [e for e in events if isinstance(e, CommandFailed)]
    assert [f.opcode for f in failed] == [Opcode.REQUEST_REVISION]
    assert "too long" in failed[0].reason
    assert session.pending is None


def test_session_acks_and_passes_on_other_decoder_packets() -> None:
    event = by_hand(0xF6, 0, 0, b"\x01")
    events = SsiSession().receive(event)
    assert events == [Write(ACK), Received(SsiPacket(0xF6, 0, 0, b"\x01"))]


def test_session_prefixes_host_commands_with_wakeup_when_asked() -> None:
    session = SsiSession(wakeup=True)
    assert session.send(ssi.beep(0)) == b"\x00" + ssi.beep(0)
    assert writes(session.receive(NR_DECODE)) == [ACK]


def test_session_drops_a_decode_longer_than_the_cap_and_reports_it() -> None:
    session = SsiSession(max_decode=10)
    first = by_hand(0xF3, 0, ssi.STATUS_CONTINUATION, b"\x03" + b"A" * 8)
    last = by_hand(0xF3, 0, 0, b"\x03" + b"B" * 8)
    events = session.receive(first) + session.receive(last)
    assert writes(events) == [ACK, ACK]
    assert not [e for e in events if isinstance(e, Decode)]
    assert next(e for e in events if isinstance(e, FrameError)).discarded == 16
    assert session.dropped_decodes == 1
    assert session.receive(NR_DECODE)[-1] == Decode(0x01, b"NR")


@given(st.binary(max_size=3000), st.integers(1, 600))
def test_session_never_raises_and_its_buffers_stay_capped(data: bytes, cap: int) -> None:
    session = SsiSession(max_decode=cap)
    for i in range(0, len(data), 97):
        session.receive(data[i : i + 97])
        assert session.buffered <= cap
        assert session.framer.buffered <= ssi.MAX_PACKET_SIZE
