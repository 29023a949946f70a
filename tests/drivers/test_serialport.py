"""The serial driver against scanner emulators on real pseudo-terminals.

Each test runs the real daemon (real SQLite outbox, sync off) with a
:class:`SerialSource` whose port is a symlink to a pty; the emulator plays a
plain, Honeywell or Zebra SSI scanner on the master side.  What must hold:
every good scan is committed exactly once, whatever the read boundaries, bad
checksums, retransmissions or an unplug; and the feedback bytes after commit
are exactly the profile's.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import honeywell, profiles, ssi
from drivers.framing import Frame, FrameError
from drivers.profiles import Profile, parse_profile
from drivers.serial_protocols import HoneywellStream, ScanLineFramer
from drivers.serialport import PortSettings, SerialSource
from drivers.ssi import NakCause, Opcode
from scanner_agent.kernel import ConfigError, DeviceUnavailable
from tests.drivers.emulators import HoneywellScanner, PlainScanner, SsiScanner
from tests.support.drivers import PLAIN, RunSource, cn20
from tests.support.polling import eventually


def toml_bytes(data: bytes) -> str:
    """A TOML basic string holding ``data`` byte for byte (as profiles write commands)."""
    return '"' + "".join(f"\\u{b:04X}" for b in data) + '"'


HONEYWELL = parse_profile(
    "test-honeywell",
    """
[profile]
vendor = "Honeywell"
model = "Test"
interfaces = ["rs232", "cdc-acm"]
[serial]
protocol = "honeywell"
[framing]
terminator = "cr"
[commands]
good_read = { honeywell_menu = [["BEP", "LVL", "3"]] }
bad_read = { honeywell_menu = [["BEP", "ERR", "1"], ["BEP", "FQ1", "1600"]] }
duplicate_read = { honeywell_menu = [["BEP", "ERR", "2"]] }
""",
)

BAD_READ_SSI = ssi.beep(3) + ssi.led_on(0x01)
SSI = parse_profile(
    "test-ssi",
    f"""
[profile]
vendor = "Zebra"
model = "Test"
interfaces = ["rs232", "ssi-cdc"]
[serial]
protocol = "ssi"
[commands]
good_read = {{ ssi = "BEEP", data = [1] }}
bad_read = {toml_bytes(BAD_READ_SSI)}
duplicate_read = {{ ssi = "BEEP", data = [4] }}
""",
)


def source_for(link: Path, profile: Profile, **kwargs: Any) -> SerialSource:
    return SerialSource(
        "serial:test",
        str(link),
        profile=profile,
        reconnect_initial_s=0.01,
        reconnect_max_s=0.05,
        **kwargs,
    )


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[PlainScanner]:
    emu = PlainScanner(tmp_path / "scanner-plain")
    yield emu
    emu.close()


@pytest.fixture
def hon(tmp_path: Path) -> Iterator[HoneywellScanner]:
    emu = HoneywellScanner(tmp_path / "scanner-honeywell")
    yield emu
    emu.close()


@pytest.fixture
def zebra(tmp_path: Path) -> Iterator[SsiScanner]:
    emu = SsiScanner(tmp_path / "scanner-ssi")
    yield emu
    emu.close()


# -- plain -----------------------------------------------------------------------------


async def test_plain_scans_are_committed_once_whatever_the_read_boundaries(
    plain: PlainScanner, run_source: RunSource
) -> None:
    source = source_for(plain.link, PLAIN)
    agent = await run_source(source)
    await eventually(lambda: source.connected)

    plain.scan(cn20(1))
    plain.scan(cn20(2), dribble=True)
    plain.write(f"{cn20(3)}\r\n{cn20(4)}\r\n".encode())  # two in one read
    plain.scan("6901234567892")  # a retail EAN-13: bad read
    plain.scan(cn20(1))  # again: duplicate
    plain.scan(cn20(5), suffix=b"\r")  # CR alone ends a frame at once

    await eventually(lambda: len(plain.received) == 7)
    assert bytes(plain.received) == b"GGGGBDG"
    assert await agent.stop() == [cn20(i) for i in (1, 2, 3, 4, 5)]
    assert source.scans == 7
    assert source.errors == 0
    assert source.last_scan_at is not None
    assert source.last_outcome is not None
    assert source.last_outcome.accepted


async def test_feedback_does_not_wait_for_asyncio_s_default_pool(
    plain: PlainScanner, run_source: RunSource
) -> None:
    """Issue 16 item 5: feedback writes shared the default pool with slow work; with every
    thread of that pool stuck, the scanner still gets its beeps."""
    source = source_for(plain.link, PLAIN)
    agent = await run_source(source)
    await eventually(lambda: source.connected, 60)
    gate = threading.Event()
    loop = asyncio.get_running_loop()
    stuck = [loop.run_in_executor(None, gate.wait) for _ in range(64)]
    try:
        plain.scan(cn20(1))
        await eventually(lambda: bytes(plain.received) == b"G", 60)
        plain.scan("6901234567892")
        await eventually(lambda: bytes(plain.received) == b"GB", 60)
    finally:
        gate.set()
        await asyncio.gather(*stuck)
    assert await agent.stop() == [cn20(1)]


async def test_plain_scanner_unplugged_goes_offline_and_is_read_again_when_replugged(
    plain: PlainScanner, run_source: RunSource
) -> None:
    source = source_for(plain.link, PLAIN)
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    first = plain.line
    assert first is not None
    assert source.status().connected
    assert source.status().model == "Test Plain"

    plain.scan(cn20(10))
    await eventually(lambda: plain.received == b"G")

    plain.unplug()
    await eventually(lambda: not source.connected)
    status = source.status()
    assert not status.connected
    assert status.errors == 1
    assert status.reason
    assert str(plain.link) in status.reason

    plain.plug()  # a new pty: the link now points at another /dev/pts/N
    await eventually(lambda: source.connected)
    assert source.connects == 2
    plain.scan(cn20(11), dribble=True)
    await eventually(lambda: plain.received == b"GG")

    assert await agent.stop() == [cn20(10), cn20(11)]
    assert source.device == str(plain.link)


async def test_a_port_that_is_absent_at_start_is_waited_for(
    tmp_path: Path, run_source: RunSource
) -> None:
    link = tmp_path / "not-yet"
    source = source_for(link, PLAIN)
    agent = await run_source(source)  # the daemon starts without the scanner
    await eventually(lambda: source.reason is not None)
    assert not source.connected
    assert source.errors == 1  # the outage counts once, not once per attempt

    emu = PlainScanner(link)
    try:
        await eventually(lambda: source.connected)
        emu.scan(cn20(20))
        await eventually(lambda: emu.received == b"G")
    finally:
        emu.close()
    assert await agent.stop() == [cn20(20)]


# -- Honeywell -------------------------------------------------------------------------


async def test_honeywell_serial_trigger_and_menu_command_feedback_byte_for_byte(
    hon: HoneywellScanner, run_source: RunSource
) -> None:
    source = source_for(hon.link, HONEYWELL)
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    good = honeywell.menu_command([("BEP", "LVL", "3")])
    dup = honeywell.menu_command([("BEP", "ERR", "2")])
    bad = honeywell.menu_command([("BEP", "ERR", "1"), ("BEP", "FQ1", "1600")])
    assert good == b"\x16M\rBEPLVL3!"

    expected = b""
    hon.dribble = True  # the scanner's data and replies arrive a byte at a time
    for code, feedback in [(cn20(30), good), (cn20(30), dup), ("6901234567892", bad)]:
        hon.queue_code(code)
        assert await source.trigger()
        expected += honeywell.TRIGGER_ON + feedback

        def replied(e: bytes = expected) -> bool:
            return bytes(hon.received) == e

        await eventually(replied)
    hon.dribble = False
    hon.queue_code(cn20(31))
    assert await source.trigger()
    expected += honeywell.TRIGGER_ON + good
    await eventually(lambda: bytes(hon.received) == expected)

    assert hon.menu_commands == [good, dup, bad, good]
    assert hon.triggers == 4
    assert not hon.unknown
    # The menu replies (BEPLVL3<ACK>! ...) never reached the parser as bar codes.
    await eventually(lambda: source.scans == 4)
    assert source.errors == 0
    assert await agent.stop() == [cn20(30), cn20(31)]


async def test_honeywell_scanner_unplugged_and_replugged_is_triggered_and_answered_again(
    hon: HoneywellScanner, run_source: RunSource
) -> None:
    source = source_for(hon.link, HONEYWELL)
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    good = honeywell.menu_command([("BEP", "LVL", "3")])
    hon.queue_code(cn20(32))
    assert await source.trigger()
    await eventually(lambda: bytes(hon.received) == honeywell.TRIGGER_ON + good)

    hon.unplug()
    await eventually(lambda: not source.connected)
    assert not await source.trigger()  # no link: nothing to pull
    assert source.status().reason
    hon.plug()
    await eventually(lambda: source.connected)
    hon.dribble = True
    hon.queue_code(cn20(33))
    assert await source.trigger()
    expected = (honeywell.TRIGGER_ON + good) * 2
    await eventually(lambda: bytes(hon.received) == expected)
    assert hon.menu_commands == [good, good]
    assert source.connects == 2
    assert source.errors == 1  # the unplug; the replies never became scans or errors
    assert await agent.stop() == [cn20(32), cn20(33)]


async def test_the_profiles_setup_commands_are_pushed_at_every_connect(
    hon: HoneywellScanner, run_source: RunSource
) -> None:
    # Tags are the test's own: this checks the mechanism, not a Honeywell setting.
    profile = parse_profile(
        "test-honeywell-setup",
        """
[profile]
vendor = "Honeywell"
model = "Setup"
interfaces = ["rs232"]
[serial]
protocol = "honeywell"
[framing]
terminator = "cr"
[commands]
aim_on = { honeywell_menu = [["PRE", "AIM", "1"]] }
suffix_cr = { honeywell_menu = [["SUF", "CRX", "1"], ["SUF", "LFX", "0"]] }
""",
    )
    aim = honeywell.menu_command([("PRE", "AIM", "1")])
    suffix = honeywell.menu_command([("SUF", "CRX", "1"), ("SUF", "LFX", "0")])
    source = source_for(hon.link, profile)
    agent = await run_source(source)
    await eventually(lambda: hon.menu_commands == [aim, suffix])
    assert bytes(hon.received) == aim + suffix
    hon.queue_code(cn20(34))
    assert await source.trigger()
    await eventually(lambda: source.scans == 1)

    hon.unplug()
    await eventually(lambda: not source.connected)
    hon.plug()
    await eventually(lambda: hon.menu_commands == [aim, suffix] * 2)
    hon.queue_code(cn20(35))
    assert await source.trigger()
    await eventually(lambda: source.scans == 2)
    assert source.errors == 1  # the unplug: both ACKed replies were cut out, not scanned
    assert await agent.stop() == [cn20(34), cn20(35)]


def test_an_ssi_source_refuses_setup_commands_that_are_not_ssi_packets() -> None:
    profile = parse_profile(
        "test-ssi-setup",
        '[profile]\nvendor = "Zebra"\nmodel = "S"\ninterfaces = ["rs232"]\n'
        '[serial]\nprotocol = "ssi"\n[commands]\naim_on = "\\u0016M\\rPREAIM1!"\n',
    )
    with pytest.raises(ConfigError, match="aim_on"):
        SerialSource("s", "loop://", profile=profile)


def test_honeywell_stream_cuts_replies_out_of_lines_only_while_one_is_expected() -> None:
    stream = HoneywellStream(b"\r")
    assert stream.feed(b"ABC\x06!\r", 0.0) == [Frame(b"ABC\x06!")]  # nothing expected: data
    stream.expect_reply(0.0)
    events = stream.feed(b"BEPLVL3\x06!0123", 0.1)
    assert [type(e).__name__ for e in events] == ["MenuReply"]
    assert events[0] == honeywell.MenuReply(
        (honeywell.MenuReplyItem("BEP", "LVL", "3", honeywell.MenuStatus.ACK),),
        b"BEPLVL3\x06!",
    )
    assert stream.feed(b"45\r", 0.2) == [Frame(b"012345")]
    # An echoed SYN M CR prefix is part of the reply, not a line.
    stream.expect_reply(1.0)
    events = stream.feed(b"\x16M\rBEPERR1\x15!99\r", 1.1)
    assert isinstance(events[0], honeywell.MenuReply)
    assert not events[0].ok
    assert events[1:] == [Frame(b"99")]
    # A reply that never comes stops being expected after the time-out.
    stream.expect_reply(2.0)
    assert stream.expecting == 1
    assert stream.feed(b"X\x06!\r", 2.0 + stream.reply_timeout + 0.1) == [Frame(b"X\x06!")]


HONEYWELL_BYTES = st.lists(
    st.sampled_from([b"\x06", b"\x05", b"\x15", b"!", b".", b",", b";", b"\r", b"\n", b"\x16M\r"])
    | st.binary(max_size=40),
    max_size=12,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.tuples(HONEYWELL_BYTES, st.integers(0, 2), st.floats(0, 3)), max_size=30),
    cap=st.integers(4, 64),
    term=st.sampled_from([b"\r", b"\r\n", b"\t"]),
)
def test_honeywell_stream_never_raises_and_stays_under_its_cap(
    steps: list[tuple[bytes, int, float]], cap: int, term: bytes
) -> None:
    stream = HoneywellStream(term, max_frame=cap)
    now = 0.0
    for data, expect, dt in steps:
        now += dt
        if expect:
            stream.expect_reply(now, expect)
        for event in stream.feed(data, now):
            if isinstance(event, Frame):
                assert 0 < len(event.data) <= cap
        assert stream.buffered <= 2 * cap + 2
        assert stream.expecting <= 2 * len(steps)


def test_scan_line_framer_ends_a_frame_at_cr_and_swallows_the_lf_after_it() -> None:
    framer = ScanLineFramer(b"\r\n")
    assert framer.feed(b"A\r") == [Frame(b"A")]
    assert framer.feed(b"\nB\r\n") == [Frame(b"B")]
    assert framer.feed(b"C\n\nD\r") == [Frame(b"C"), Frame(b"D")]
    tab = ScanLineFramer(b"\t", max_frame=4)
    assert tab.feed(b"12\t12345\t") == [
        Frame(b"12"),
        FrameError("frame too long (5 bytes, over 4)", 5, head=b"1234"),
    ]


# -- Zebra SSI -------------------------------------------------------------------------


async def test_ssi_decodes_are_acked_joined_and_committed_once(
    zebra: SsiScanner, run_source: RunSource
) -> None:
    source = source_for(zebra.link, SSI)
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    gs1 = "010690123456789217280500104711\x1d21ABC123"
    gs1_hri = "(01)06901234567892(17)280500(10)4711(21)ABC123"

    zebra.send_decode(cn20(40))
    zebra.send_decode(cn20(41), dribble=True)
    zebra.send_decode(cn20(42), corrupt=True)  # host NAKs, decoder resends
    zebra.send_decode(gs1, chunk=8)  # five packets, continuation bit on four
    zebra.send_decode(cn20(43), lose_ack=True)  # the same packet twice
    zebra.send_decode(cn20(40))  # duplicate
    zebra.send_decode("6901234567892")  # bad read
    await zebra.idle()

    good = ssi.beep(1)
    await eventually(lambda: len(zebra.commands) == 8)
    sent = [c.encode() for c in zebra.commands]
    assert sent == [good] * 5 + [ssi.beep(4), ssi.beep(3), ssi.led_on(0x01)]
    assert zebra.naks == [NakCause.RESEND]
    # One host CMD_ACK per good DECODE_DATA packet the decoder sent.
    decodes = [p for p in zebra.sent_packets if p[1] == Opcode.DECODE_DATA]
    bad_checksums = 1
    assert zebra.acks == len(decodes) - bad_checksums
    assert bytes(zebra.received).count(ssi.cmd_ack()) == zebra.acks
    assert zebra.failures == []

    assert await agent.stop() == [cn20(40), cn20(41), cn20(42), gs1_hri, cn20(43)]
    assert source.errors == 1  # the bad checksum


async def test_ssi_host_resends_a_command_the_decoder_naks_and_triggers_start_decode(
    zebra: SsiScanner, run_source: RunSource
) -> None:
    source = source_for(zebra.link, SSI, response_timeout_s=0.5)
    agent = await run_source(source)
    await eventually(lambda: source.connected)

    zebra.nak_commands = 1  # the decoder garbles our BEEP once
    zebra.send_decode(cn20(50))
    await zebra.idle()
    await eventually(lambda: len(zebra.commands) == 2)
    first, resent = zebra.commands
    assert first.encode() == ssi.beep(1)
    assert first.status == 0
    assert resent.opcode == Opcode.BEEP
    assert resent.data == b"\x01"
    assert resent.status == ssi.STATUS_RETRANSMIT

    assert await source.trigger()
    await eventually(lambda: len(zebra.commands) == 3)
    assert zebra.commands[2].encode() == ssi.start_decode()
    assert await source.trigger(on=False)
    await eventually(lambda: len(zebra.commands) == 4)
    assert zebra.commands[3].encode() == ssi.stop_decode()
    assert await agent.stop() == [cn20(50)]


async def test_ssi_scanner_unplugged_mid_stream_and_replugged(
    zebra: SsiScanner, run_source: RunSource
) -> None:
    source = source_for(zebra.link, SSI)
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    zebra.send_decode(cn20(60), chunk=6)
    await zebra.idle()
    await eventually(lambda: len(zebra.commands) == 1)

    zebra.unplug()
    await eventually(lambda: not source.connected)
    assert source.errors == 1
    zebra.plug()
    await eventually(lambda: source.connected)
    zebra.send_decode(cn20(61), chunk=6, dribble=True)
    zebra.send_decode(cn20(62), corrupt=True)
    await zebra.idle()
    await eventually(lambda: len(zebra.commands) == 3)
    assert [c.encode() for c in zebra.commands] == [ssi.beep(1)] * 3
    assert await agent.stop() == [cn20(60), cn20(61), cn20(62)]


# -- settings and config -----------------------------------------------------------------


def test_port_settings_come_from_the_profile_with_the_source_baudrate_winning() -> None:
    for stem in ("honeywell-xenon-1900g", "honeywell-xenon-1902g"):
        xenon = profiles.load_profile(stem)
        assert PortSettings.from_profile(xenon) == PortSettings(9600, 8, "none", 1, "none")
    assert PortSettings.from_profile(PLAIN).baudrate == 115200
    assert PortSettings.from_profile(PLAIN, 38400).baudrate == 38400
    assert PortSettings.from_profile(PLAIN).kwargs()["parity"] == "N"


def test_an_ssi_source_refuses_profile_commands_that_are_not_ssi_packets() -> None:
    with pytest.raises(ConfigError, match="good_read"):
        SerialSource("s", "loop://", profile=PLAIN, protocol="ssi")


def test_opening_a_missing_port_is_a_device_unavailable_error(tmp_path: Path) -> None:
    source = source_for(tmp_path / "nothing", PLAIN)
    with pytest.raises(DeviceUnavailable, match="nothing"):
        source._open()


def test_host_ack_escapes_are_shipped_for_the_cordless_xenon_only() -> None:
    # The Xenon 1900/1902 guide documents Host ACK in its cordless chapter only.
    corded = profiles.load_profile("honeywell-xenon-1900g").commands
    assert (corded.good_read, corded.bad_read, corded.duplicate_read) == (None, None, None)
    cordless = profiles.load_profile("honeywell-xenon-1902g")
    assert cordless.commands.good_read == b"\x1b7,"
    assert cordless.usb_ids == ()  # no source gives the base's USB ids


async def test_shipped_xenon_1902g_profile_answers_with_host_ack_escapes_byte_for_byte(
    plain: PlainScanner, run_source: RunSource
) -> None:
    # The real profile, as shipped: Honeywell "Host Acknowledgment" escapes (cordless 1902g).
    source = source_for(plain.link, profiles.load_profile("honeywell-xenon-1902g"))
    assert source.protocol == "honeywell"
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    good, bad, duplicate = b"\x1b7,", b"\x1b8,", b"\x1b8,\x1b4,"
    expected = b""
    for code, feedback in [(cn20(40), good), (cn20(40), duplicate), ("6901234567892", bad)]:
        plain.scan(code)
        expected += feedback

        def answered(e: bytes = expected) -> bool:
            return bytes(plain.received) == e

        await eventually(answered)
    assert await agent.stop() == [cn20(40)]


async def test_ssi_decodes_carry_the_aim_identifier_of_their_bar_code_type(
    zebra: SsiScanner, run_source: RunSource
) -> None:
    source = source_for(zebra.link, SSI)
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    gs1 = "010690123456789217280500104711\x1d21ABC123"

    zebra.send_decode(gs1, barcode_type=0xC1, chunk=8)  # GS1 Data Matrix, multipacket
    zebra.send_decode(cn20(70), barcode_type=0x03)  # Code 128: modifier unknown, no prefix
    zebra.send_decode("]C1" + cn20(71), barcode_type=0x0F)  # the decoder sent its own prefix
    zebra.send_decode(cn20(72), barcode_type=0x1B)  # plain Data Matrix
    await zebra.idle()
    await eventually(lambda: len(zebra.commands) == 4)

    rows = await agent.rows()
    assert [(r.raw, r.symbology) for r in rows] == [
        ("]d2" + gs1, "]d2"),
        (cn20(70), None),
        ("]C1" + cn20(71), "]C1"),
        ("]d1" + cn20(72), "]d1"),
    ]
    assert rows[0].code == "(01)06901234567892(17)280500(10)4711(21)ABC123"
    await agent.stop()


async def test_ssi_profile_without_aim_prefix_passes_decodes_as_they_are(
    zebra: SsiScanner, run_source: RunSource
) -> None:
    bare = parse_profile(
        "test-ssi-bare",
        '[profile]\nvendor = "Zebra"\nmodel = "Bare"\ninterfaces = ["rs232"]\n'
        '[serial]\nprotocol = "ssi"\n[framing]\naim_prefix = false\n',
    )
    source = source_for(zebra.link, bare)
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    zebra.send_decode(cn20(73), barcode_type=0xC1)
    await zebra.idle()
    await eventually(lambda: source.scans == 1)
    await eventually(lambda: source.last_outcome is not None)
    assert [(r.raw, r.symbology) for r in await agent.rows()] == [(cn20(73), None)]
    await agent.stop()


async def test_shipped_zebra_ssi_profile_beeps_good_bad_and_duplicate_byte_for_byte(
    zebra: SsiScanner, run_source: RunSource
) -> None:
    # The real profile, as shipped: SSI BEEP with the beep codes of the SSI guide's table.
    profile = profiles.load_profile("zebra-ssi")
    source = source_for(zebra.link, profile)
    assert source.protocol == "ssi"
    agent = await run_source(source)
    await eventually(lambda: source.connected)

    good, bad, duplicate = bytes.fromhex("05e6040000ff11"), ssi.beep(0x11), ssi.beep(0x06)
    assert (profile.commands.good_read, profile.commands.bad_read) == (good, bad)
    assert profile.commands.duplicate_read == duplicate
    for code, feedback in [(cn20(80), good), (cn20(80), duplicate), ("6901234567892", bad)]:
        zebra.send_decode(code)
        await zebra.idle()

        def beeped(f: bytes = feedback) -> bool:
            return bool(zebra.commands) and zebra.commands[-1].encode() == f

        await eventually(beeped)
    assert [c.encode() for c in zebra.commands] == [good, duplicate, bad]
    # Each BEEP was answered with CMD_ACK: nothing is left waiting or failed.
    assert zebra.failures == []
    await eventually(lambda: source._ssi is not None and source._ssi.acked == [0xE6] * 3)
    assert await agent.stop() == [cn20(80)]


async def test_ssi_host_commands_follow_a_wakeup_byte_and_a_pause_without_rtscts(
    zebra: SsiScanner, run_source: RunSource
) -> None:
    # Zebra PRGs (SSI chapter, "RTS/CTS Lines"): bypassing hardware handshaking, the
    # host must send WAKEUP before other communication, then wait at least 10 ms.
    source = source_for(zebra.link, SSI)
    assert source.settings.flow_control == "none"
    assert source.ssi_wakeup
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    zebra.send_decode(cn20(90))
    await zebra.idle()
    await eventually(lambda: len(zebra.commands) == 1)
    assert await source.trigger()
    await eventually(lambda: len(zebra.commands) == 2)
    assert [c.encode() for c in zebra.commands] == [ssi.beep(1), ssi.start_decode()]
    assert zebra.wakeups == 2
    assert all(gap is not None and gap >= 0.01 for gap in zebra.command_gaps), zebra.command_gaps
    # Answers to the decoder's packets (CMD_ACK) are not host commands: no WAKEUP for them.
    assert bytes(zebra.received).count(b"\x00" + ssi.cmd_ack()) == 0
    assert await agent.stop() == [cn20(90)]


async def test_ssi_with_rtscts_sends_no_wakeup_byte(
    zebra: SsiScanner, run_source: RunSource
) -> None:
    rtscts = parse_profile(
        "test-ssi-rtscts",
        '[profile]\nvendor = "Zebra"\nmodel = "RTS"\ninterfaces = ["rs232"]\n'
        '[serial]\nprotocol = "ssi"\nflow_control = "rtscts"\n'
        '[commands]\ngood_read = { ssi = "BEEP", data = [1] }\n',
    )
    source = source_for(zebra.link, rtscts)
    assert not source.ssi_wakeup
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    zebra.send_decode(cn20(91))
    await zebra.idle()
    await eventually(lambda: len(zebra.commands) == 1)
    assert zebra.commands[0].encode() == ssi.beep(1)
    assert zebra.wakeups == 0
    assert zebra.command_gaps == [None]
    assert await agent.stop() == [cn20(91)]
