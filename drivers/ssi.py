"""Zebra/Symbol SSI (Simple Serial Interface): packets, a framer and a session.

Pure protocol layer, no I/O: :func:`encode_packet` and the command helpers build
the bytes a host writes, :class:`SsiFramer` turns received bytes into
:class:`SsiPacket` and :class:`SsiError` events, and :class:`SsiSession` is the
stop-and-wait state machine on top (ACK/NAK both ways, multipacket decodes).

Source: Zebra *Simple Serial Interface Programmer's Guide*, 72E-40451 (revisions
-03, May 2015, and -04, January 2021), cross-checked against the SSI chapters of
scan-engine integration guides that reproduce it (Motorola SE955 "Simple Serial
Interface" chapter, Symbol SE-923 chapter 6, Datalogic Dragon D151 "Simple Serial
Interface") and the opcode table in the Zebra DS9908 product reference guide.

Packet layout (every field one byte unless noted)::

    Length | Opcode | Message Source | Status | Data ... | Checksum (2 bytes)

* ``Length`` counts Length, Opcode, Source, Status and Data, not the checksum, so
  it is at least 4 and at most 255 (a packet is at most 257 bytes on the wire).
* ``Message Source``: 0 = decoder, 4 = host.
* ``Status``: bit 0 retransmit (set on every resend), bit 1 continuation (more
  packets of a multipacket message follow), bit 3 change type (PARAM_SEND:
  1 = permanent, 0 = temporary); unused bits are 0.
* ``Checksum``: the 2's complement of the 16-bit sum of all preceding bytes,
  high byte first, i.e. ``(0x10000 - sum) & 0xFFFF``.

Values not confirmed in the guide excerpts consulted are marked *unconfirmed*:
the NAK cause ``CANCEL`` (10) comes from an open-source SSI host header, not from
the guide's table; the PARAM_SEND prefixes 0xF0/0xF1/0xF2 for parameter numbers
256-1023 follow the "Parameter # F1h 40h" notation of the Zebra product
reference guides (F1h 40h = parameter 576) and an open-source SSI host; and that
*every* packet of a multipacket DECODE_DATA carries its own bar code type byte
is read from the packet format, not from a recorded trace.

>>> encode_packet(Opcode.CMD_ACK).hex(" ")
'04 d0 04 00 ff 28'
>>> framer = SsiFramer()
>>> framer.feed(bytes.fromhex("04 d0 00 00 ff 2c"))
[SsiPacket(opcode=208, source=0, status=0, data=b'')]
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from drivers.framing import DEFAULT_MAX_FRAME, FrameError

HOST = 0x04
"""Message Source of packets the host sends."""
DECODER = 0x00
"""Message Source of packets the decoder (scanner) sends."""

STATUS_RETRANSMIT = 0x01
"""Status bit 0: this packet is a resend of one already sent."""
STATUS_CONTINUATION = 0x02
"""Status bit 1: more packets of this multipacket message follow."""
STATUS_PERMANENT = 0x08
"""Status bit 3 (PARAM_SEND "change type"): store the change permanently."""

WAKEUP = b"\x00"
"""The WAKEUP character: sent before a command when RTS/CTS is not used, so the
first byte of the command is not lost while the decoder wakes (the guide asks
for 10 ms to 1 s between the wake-up byte and the command; the caller times it)."""

HEADER_SIZE = 4
"""Length + Opcode + Source + Status."""
CHECKSUM_SIZE = 2
MAX_LENGTH = 0xFF
"""Largest value of the Length byte."""
MAX_PACKET_SIZE = MAX_LENGTH + CHECKSUM_SIZE
"""Largest packet on the wire (257 bytes); also the framer's buffer cap."""
MAX_DATA = MAX_LENGTH - HEADER_SIZE
"""Largest data field of one packet (251 bytes)."""

NO_BEEP = 0xFF
"""PARAM_SEND beep code meaning "do not beep"."""


class Opcode(enum.IntEnum):
    """SSI opcodes (guide opcode table; DS9908 PRG table 15). H = host sends, D = decoder."""

    REQUEST_REVISION = 0xA3
    """H: ask for the decoder's software/hardware configuration."""
    REPLY_REVISION = 0xA4
    """D: answer to REQUEST_REVISION."""
    AIM_OFF = 0xC4
    """H: switch the aiming pattern off."""
    AIM_ON = 0xC5
    """H: switch the aiming pattern on."""
    PARAM_SEND = 0xC6
    """H/D: set parameter values (host) or report them (decoder)."""
    PARAM_REQUEST = 0xC7
    """H: ask for parameter values."""
    PARAM_DEFAULTS = 0xC8
    """H: restore parameter defaults."""
    CMD_ACK = 0xD0
    """H/D: positive acknowledgement of a received packet."""
    CMD_NAK = 0xD1
    """H/D: negative acknowledgement; the data byte is a :class:`NakCause`."""
    CAPABILITIES_REQUEST = 0xD3
    """H: ask which commands the decoder supports."""
    CAPABILITIES_REPLY = 0xD4
    """D: answer to CAPABILITIES_REQUEST."""
    START_DECODE = 0xE4
    """H: start a scan session (a software trigger pull)."""
    STOP_DECODE = 0xE5
    """H: abort the scan session."""
    BEEP = 0xE6
    """H: sound the beeper; the data byte is a beep code."""
    LED_ON = 0xE7
    """H: switch LEDs on; the data byte selects them (bit 0 = decode LED)."""
    LED_OFF = 0xE8
    """H: switch LEDs off; same selection byte as LED_ON."""
    SCAN_ENABLE = 0xE9
    """H: allow the operator to scan."""
    SCAN_DISABLE = 0xEA
    """H: prevent the operator from scanning."""
    SLEEP = 0xEB
    """H: put the decoder into low power."""
    DECODE_DATA = 0xF3
    """D: a decoded bar code; first data byte is the bar code type."""
    EVENT = 0xF6
    """D: an event, identified by an event code."""


class NakCause(enum.IntEnum):
    """The cause byte of CMD_NAK (guide CMD_NAK field descriptions)."""

    RESEND = 1
    """Checksum failure: send the packet again (with the retransmit bit)."""
    BAD_CONTEXT = 2
    """Unexpected or unknown message."""
    DENIED = 6
    """Host directive denied (e.g. a bad parameter value)."""
    CANCEL = 10
    """Cancel (multipacket). *Unconfirmed*: from an open-source SSI host, not the
    guide's table (which lists 1, 2 and 6 and marks the rest reserved)."""


REPLY_OPCODES: dict[int, int] = {
    Opcode.REQUEST_REVISION: Opcode.REPLY_REVISION,
    Opcode.PARAM_REQUEST: Opcode.PARAM_SEND,
    Opcode.CAPABILITIES_REQUEST: Opcode.CAPABILITIES_REPLY,
}
"""Host requests answered by a reply packet instead of a bare CMD_ACK."""


def checksum(data: bytes) -> int:
    """The SSI checksum of ``data``: 2's complement of its 16-bit byte sum."""
    return (0x10000 - sum(data)) & 0xFFFF


def _byte(value: int, what: str) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"Failed to use {value!r} as SSI {what}: expected 0..255")
    return value


def encode_packet(opcode: int, data: bytes = b"", *, source: int = HOST, status: int = 0) -> bytes:
    """Build one SSI packet with its length and checksum.

    >>> encode_packet(Opcode.BEEP, b"\\x00").hex(" ")
    '05 e6 04 00 00 ff 11'
    """
    _byte(opcode, "opcode")
    _byte(source, "message source")
    _byte(status, "status")
    if len(data) > MAX_DATA:
        raise ValueError(
            f"Failed to encode {len(data)} data bytes as one SSI packet: "
            f"expected at most {MAX_DATA}"
        )
    body = bytes((HEADER_SIZE + len(data), opcode, source, status)) + data
    return body + checksum(body).to_bytes(2, "big")


def with_wakeup(packet: bytes) -> bytes:
    """Prefix ``packet`` with the WAKEUP byte (for links without RTS/CTS)."""
    return WAKEUP + packet


def beep(code: int) -> bytes:
    """BEEP with a beep code (0 = one short high beep in Zebra's beep-code table)."""
    return encode_packet(Opcode.BEEP, bytes((_byte(code, "beep code"),)))


def led_on(leds: int = 0x01) -> bytes:
    """LED_ON; ``leds`` is the selection byte (bit 0 = decode LED)."""
    return encode_packet(Opcode.LED_ON, bytes((_byte(leds, "LED selection"),)))


def led_off(leds: int = 0x01) -> bytes:
    """LED_OFF; ``leds`` is the selection byte (bit 0 = decode LED)."""
    return encode_packet(Opcode.LED_OFF, bytes((_byte(leds, "LED selection"),)))


def start_decode() -> bytes:
    """START_DECODE: pull the trigger from the host."""
    return encode_packet(Opcode.START_DECODE)


def stop_decode() -> bytes:
    """STOP_DECODE: release the host trigger."""
    return encode_packet(Opcode.STOP_DECODE)


def scan_enable() -> bytes:
    """SCAN_ENABLE: let the operator scan."""
    return encode_packet(Opcode.SCAN_ENABLE)


def scan_disable() -> bytes:
    """SCAN_DISABLE: stop the operator from scanning."""
    return encode_packet(Opcode.SCAN_DISABLE)


def cmd_ack(*, source: int = HOST) -> bytes:
    """CMD_ACK: the packet just received was good."""
    return encode_packet(Opcode.CMD_ACK, source=source)


def cmd_nak(cause: int = NakCause.RESEND, *, source: int = HOST) -> bytes:
    """CMD_NAK with a cause byte (default RESEND: checksum failure)."""
    return encode_packet(Opcode.CMD_NAK, bytes((_byte(cause, "NAK cause"),)), source=source)


def param_number_bytes(number: int) -> bytes:
    """Encode a parameter number for PARAM_SEND.

    0..0xEF is one byte; 256..1023 is an extended prefix (0xF0 for 256..511,
    0xF1 for 512..767, 0xF2 for 768..1023) and the low byte.  240..255 collide
    with the prefixes and are refused, as are numbers above 1023 (whose longer
    encodings are not confirmed).
    """
    if 0 <= number < 0xF0:
        return bytes((number,))
    if 0x100 <= number < 0x400:
        return bytes((0xF0 + (number >> 8) - 1, number & 0xFF))
    raise ValueError(
        f"Failed to encode {number!r} as SSI parameter number: expected 0..239 or 256..1023"
    )


def param_send(
    params: Iterable[tuple[int, int]], *, permanent: bool = False, beep_code: int = NO_BEEP
) -> bytes:
    """PARAM_SEND: beep code, then (parameter number, value) pairs.

    ``permanent`` sets the change-type status bit (survives power-off).
    """
    data = bytearray((_byte(beep_code, "beep code"),))
    for number, value in params:
        data += param_number_bytes(number)
        data.append(_byte(value, "parameter value"))
    return encode_packet(
        Opcode.PARAM_SEND, bytes(data), status=STATUS_PERMANENT if permanent else 0
    )


@dataclass(frozen=True, slots=True)
class SsiPacket:
    """One received packet whose checksum was good."""

    opcode: int
    source: int
    """0 = decoder, 4 = host."""
    status: int
    data: bytes

    @property
    def retransmit(self) -> bool:
        """True when the sender marks this as a resend."""
        return bool(self.status & STATUS_RETRANSMIT)

    @property
    def continuation(self) -> bool:
        """True when more packets of the same message follow."""
        return bool(self.status & STATUS_CONTINUATION)

    @property
    def size(self) -> int:
        """Bytes on the wire, checksum included."""
        return HEADER_SIZE + len(self.data) + CHECKSUM_SIZE

    def encode(self) -> bytes:
        """The packet's bytes (recomputing the checksum)."""
        return encode_packet(self.opcode, self.data, source=self.source, status=self.status)


class SsiErrorKind(enum.StrEnum):
    """Why the framer reported an error."""

    CHECKSUM = "checksum"
    """A well-formed packet whose checksum did not match (answer: NAK RESEND)."""
    GARBAGE = "garbage"
    """Bytes that could not start a packet (bad length or source), dropped."""


@dataclass(frozen=True, slots=True)
class SsiError:
    """Input the framer could not turn into a packet."""

    kind: SsiErrorKind
    reason: str
    discarded: int
    """Bytes thrown away by this event (0 for CHECKSUM: resynchronising drops them
    one at a time and reports them as GARBAGE)."""


SsiEvent = SsiPacket | SsiError


class SsiFramer:
    """Split a byte stream into SSI packets.

    A candidate packet starts at a byte that is a plausible Length (4..255)
    followed by an opcode and a plausible Message Source (0 or 4).  When a
    candidate's checksum fails, one :class:`SsiError` of kind CHECKSUM is
    reported and the framer moves on by a single byte, so a real packet that
    starts inside a corrupted one is never skipped; bytes dropped while
    resynchronising are reported as GARBAGE (one event per run).  While a
    candidate is still incomplete, a complete packet with a good checksum found
    *inside* it wins (the candidate was garbage that looked like a header), so a
    stray length byte cannot hold back the packets behind it.  The buffer never
    holds more than :data:`MAX_PACKET_SIZE` bytes; :meth:`flush` drops a partial
    packet when the caller's inter-byte time-out expires.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._quiet_until = 0
        """Checksum failures starting before this offset are part of a packet
        already reported bad; they count as garbage, not as a new bad packet."""
        self.discarded_bytes = 0
        """Total bytes dropped."""
        self.bad_checksums = 0
        """Total packets reported with a bad checksum."""
        self.packets = 0
        """Total good packets framed."""

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a packet (at most 257)."""
        return len(self._buffer)

    def _plausible(self, buf: bytearray) -> bool:
        if buf[0] < HEADER_SIZE:
            return False
        return len(buf) < 3 or buf[2] in (DECODER, HOST)

    def feed(self, data: bytes) -> list[SsiEvent]:
        """Add bytes; return the packets and errors they complete, in order."""
        events: list[SsiEvent] = []
        self._buffer += data
        buf = self._buffer
        garbage = 0
        while buf:
            if not self._plausible(buf):
                del buf[0]
                garbage += 1
                self._quiet_until = max(self._quiet_until - 1, 0)
                continue
            total = buf[0] + CHECKSUM_SIZE
            if len(buf) < total:
                start = self._complete_packet_after(buf)
                if start < 0:
                    break
                # The incomplete candidate was garbage: a whole, valid packet
                # starts inside it.  Drop the bytes before that packet.
                del buf[:start]
                garbage += start
                self._quiet_until = max(self._quiet_until - start, 0)
                continue
            body = bytes(buf[: buf[0]])
            got = int.from_bytes(buf[buf[0] : total], "big")
            if got == checksum(body):
                garbage = self._flush_garbage(events, garbage)
                events.append(SsiPacket(body[1], body[2], body[3], body[HEADER_SIZE:]))
                self.packets += 1
                del buf[:total]
                self._quiet_until = 0
                continue
            if self._quiet_until == 0:
                garbage = self._flush_garbage(events, garbage)
                self.bad_checksums += 1
                events.append(
                    SsiError(
                        SsiErrorKind.CHECKSUM,
                        f"packet of {total} bytes (opcode 0x{body[1]:02X}) failed its "
                        f"checksum: got 0x{got:04X}, expected 0x{checksum(body):04X}",
                        0,
                    )
                )
                self._quiet_until = total
            del buf[0]
            garbage += 1
            self._quiet_until = max(self._quiet_until - 1, 0)
        self._flush_garbage(events, garbage)
        return events

    def _complete_packet_after(self, buf: bytearray) -> int:
        """Offset > 0 of a complete packet with a good checksum, or -1."""
        for start in range(1, len(buf) - HEADER_SIZE - CHECKSUM_SIZE + 1):
            length = buf[start]
            end = start + length + CHECKSUM_SIZE
            if length < HEADER_SIZE or end > len(buf) or buf[start + 2] not in (DECODER, HOST):
                continue
            if int.from_bytes(buf[end - CHECKSUM_SIZE : end], "big") == checksum(
                bytes(buf[start : start + length])
            ):
                return start
        return -1

    def _flush_garbage(self, events: list[SsiEvent], count: int) -> int:
        if count:
            self.discarded_bytes += count
            events.append(
                SsiError(SsiErrorKind.GARBAGE, f"{count} bytes outside any SSI packet", count)
            )
        return 0

    def flush(self) -> list[SsiEvent]:
        """Drop a partial packet (call on an inter-byte time-out); report it."""
        count = len(self._buffer)
        self._buffer.clear()
        self._quiet_until = 0
        events: list[SsiEvent] = []
        self._flush_garbage(events, count)
        return events


@dataclass(frozen=True, slots=True)
class Decode:
    """A complete bar code from DECODE_DATA (multipacket messages joined)."""

    barcode_type: int
    """The SSI bar code type byte (the guide's code-type table)."""
    data: bytes


@dataclass(frozen=True, slots=True)
class Write:
    """Bytes the caller must write to the decoder now, in order."""

    data: bytes


@dataclass(frozen=True, slots=True)
class CommandAcked:
    """The decoder acknowledged the pending command (CMD_ACK or its reply packet)."""

    opcode: int
    reply: SsiPacket | None = None
    """The reply packet for requests answered by one (REPLY_REVISION, ...)."""


@dataclass(frozen=True, slots=True)
class CommandFailed:
    """The pending command was refused or ran out of retries."""

    opcode: int
    reason: str
    cause: int | None = None
    """The NAK cause byte, when the decoder sent one."""


@dataclass(frozen=True, slots=True)
class Received:
    """Any other good packet from the decoder (EVENT, PARAM_SEND, ...), acknowledged."""

    packet: SsiPacket


@dataclass(frozen=True, slots=True)
class ReplyContinued:
    """A packet of a multipacket reply to the pending request arrived and more follow.

    The decoder is answering: the caller restarts its response timer, so a long
    reply is not taken for silence (and the request resent) half-way through.
    """

    opcode: int
    """The pending request's opcode."""


SessionEvent = (
    Decode
    | Write
    | CommandAcked
    | CommandFailed
    | ReplyContinued
    | Received
    | SsiError
    | FrameError
)


@dataclass(slots=True)
class _Pending:
    opcode: int
    data: bytes
    status: int
    tries: int


class SsiSession:
    """The host side of SSI as a pure state machine.

    Feed received bytes to :meth:`receive`; write every :class:`Write` it
    returns, in order.  Send commands with :meth:`send` (one at a time:
    stop-and-wait) and call :meth:`timeout` when the caller's response timer
    (the decoder's "serial response time-out", 2 s by default) expires.

    * DECODE_DATA packets are acknowledged one by one and joined while the
      continuation bit is set; the result is one :class:`Decode`, capped at
      ``max_decode`` bytes (longer ones are dropped and reported).
    * A packet with a bad checksum is answered with CMD_NAK(RESEND) and counted.
    * A resend of the packet just acknowledged (our ACK was lost) is
      acknowledged again and not joined twice.
    * CMD_NAK(RESEND) for our command resends it with the retransmit bit, at
      most ``max_retries`` times; any other NAK fails the command.
    * A reply packet to a pending request (REPLY_REVISION, PARAM_SEND after
      PARAM_REQUEST, CAPABILITIES_REPLY) may be multipacket too: each packet is
      acknowledged and the data of all of them is joined (capped at
      ``max_decode`` bytes) into the one reply :class:`CommandAcked` carries.
      Each packet but the last also gives a :class:`ReplyContinued`: the
      caller restarts its response timer then.
    """

    def __init__(
        self, *, max_decode: int = DEFAULT_MAX_FRAME, max_retries: int = 2, wakeup: bool = False
    ) -> None:
        if max_decode < 1:
            raise ValueError(f"Failed to use max_decode={max_decode}: expected a positive size")
        if max_retries < 0:
            raise ValueError(f"Failed to use max_retries={max_retries}: expected 0 or more")
        self.framer = SsiFramer()
        self.max_decode = max_decode
        self.max_retries = max_retries
        self.wakeup = wakeup
        """Prefix host-initiated commands with the WAKEUP byte (no RTS/CTS)."""
        self._pending: _Pending | None = None
        self._assembly = bytearray()
        self._assembly_type: int | None = None
        self._dropping = False
        self._last_acked: tuple[int, int, bytes] | None = None
        self._reply = bytearray()
        """Data of a multipacket reply to the pending request, joined so far."""
        self.bad_checksums = 0
        """Packets answered with NAK RESEND."""
        self.retransmits = 0
        """Commands resent after a NAK RESEND or a time-out."""
        self.dropped_decodes = 0
        """Decodes thrown away for exceeding ``max_decode``."""

    @property
    def pending(self) -> int | None:
        """Opcode of the command waiting for its ACK, if any."""
        return self._pending.opcode if self._pending else None

    @property
    def buffered(self) -> int:
        """Bytes of a multipacket decode being joined (never above ``max_decode``)."""
        return len(self._assembly)

    def send(self, packet: bytes) -> bytes:
        """Register a host command (built with :func:`encode_packet`) and return
        the bytes to write.  Raises ``RuntimeError`` while another command waits."""
        if self._pending is not None:
            raise RuntimeError(
                f"Failed to send SSI opcode 0x{packet[1]:02X}: opcode "
                f"0x{self._pending.opcode:02X} is still waiting for its ACK"
            )
        events = SsiFramer().feed(packet)
        if len(events) != 1 or not isinstance(events[0], SsiPacket):
            raise ValueError(f"Failed to send {packet!r} as SSI command: not one valid packet")
        sent = events[0]
        self._pending = _Pending(sent.opcode, sent.data, sent.status, 0)
        self._reply.clear()
        return with_wakeup(packet) if self.wakeup else packet

    def timeout(self) -> list[SessionEvent]:
        """The response timer expired: resend the pending command or fail it."""
        if self._pending is None:
            return []
        return self._retry(self._pending, "no response before the time-out")

    def _retry(self, pending: _Pending, why: str) -> list[SessionEvent]:
        self._reply.clear()  # a resent request is answered from the start
        if pending.tries >= self.max_retries:
            self._pending = None
            return [CommandFailed(pending.opcode, f"{why} after {pending.tries} resends")]
        pending.tries += 1
        self.retransmits += 1
        packet = encode_packet(
            pending.opcode, pending.data, status=pending.status | STATUS_RETRANSMIT
        )
        return [Write(with_wakeup(packet) if self.wakeup else packet)]

    def receive(self, data: bytes) -> list[SessionEvent]:
        """Process received bytes; return decodes, replies to write and errors."""
        events: list[SessionEvent] = []
        for item in self.framer.feed(data):
            if isinstance(item, SsiError):
                events.append(item)
                if item.kind is SsiErrorKind.CHECKSUM:
                    self.bad_checksums += 1
                    events.append(Write(cmd_nak(NakCause.RESEND)))
            else:
                self._packet(item, events)
        return events

    def _packet(self, packet: SsiPacket, events: list[SessionEvent]) -> None:
        if packet.opcode == Opcode.CMD_ACK:
            if self._pending is not None:
                events.append(CommandAcked(self._pending.opcode))
                self._pending = None
            return
        if packet.opcode == Opcode.CMD_NAK:
            self._nak(packet, events)
            return
        key = (packet.opcode, packet.status & ~STATUS_RETRANSMIT, packet.data)
        events.append(Write(cmd_ack()))
        if packet.retransmit and key == self._last_acked:
            return
        self._last_acked = key
        if packet.opcode == Opcode.DECODE_DATA:
            self._decode(packet, events)
            return
        pending = self._pending
        if pending is not None and REPLY_OPCODES.get(pending.opcode) == packet.opcode:
            self._reply_packet(pending, packet, events)
            return
        events.append(Received(packet))

    def _reply_packet(
        self, pending: _Pending, packet: SsiPacket, events: list[SessionEvent]
    ) -> None:
        """Join a (multipacket) reply to ``pending``; the last packet acknowledges it."""
        if len(self._reply) + len(packet.data) > self.max_decode:
            self._reply.clear()
            self._pending = None
            events.append(
                CommandFailed(pending.opcode, f"reply too long (over {self.max_decode} bytes)")
            )
            return
        if packet.continuation:
            self._reply += packet.data
            events.append(ReplyContinued(pending.opcode))
            return
        data = bytes(self._reply) + packet.data
        self._reply.clear()
        self._pending = None
        reply = (
            packet
            if data == packet.data
            else SsiPacket(packet.opcode, packet.source, packet.status, data)
        )
        events.append(CommandAcked(pending.opcode, reply))

    def _nak(self, packet: SsiPacket, events: list[SessionEvent]) -> None:
        pending = self._pending
        if pending is None:
            return
        cause = packet.data[0] if packet.data else None
        if cause == NakCause.RESEND:
            events.extend(self._retry(pending, "NAK RESEND"))
            return
        self._pending = None
        self._reply.clear()
        try:
            name = NakCause(cause).name if cause is not None else "without a cause"
        except ValueError:
            name = f"cause {cause}"
        events.append(CommandFailed(pending.opcode, f"NAK {name}", cause))

    def _decode(self, packet: SsiPacket, events: list[SessionEvent]) -> None:
        if not packet.data:
            events.append(FrameError("DECODE_DATA packet without a bar code type", 0))
            return
        if self._assembly_type is None and not self._dropping:
            self._assembly_type = packet.data[0]
        if not self._dropping:
            chunk = packet.data[1:]
            if len(self._assembly) + len(chunk) > self.max_decode:
                discarded = len(self._assembly) + len(chunk)
                self._assembly.clear()
                self._assembly_type = None
                self._dropping = True
                self.dropped_decodes += 1
                events.append(
                    FrameError(f"decode too long (over {self.max_decode} bytes)", discarded)
                )
            else:
                self._assembly += chunk
        elif packet.data:
            events.append(FrameError("tail of an over-long decode", len(packet.data) - 1))
        if packet.continuation:
            return
        if self._dropping:
            self._dropping = False
            return
        barcode_type = self._assembly_type if self._assembly_type is not None else 0
        events.append(Decode(barcode_type, bytes(self._assembly)))
        self._assembly.clear()
        self._assembly_type = None
