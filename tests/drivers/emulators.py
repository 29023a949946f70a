"""Scanner emulators on real pseudo-terminals, for the driver tests and the bench.

Each emulator holds the master side of a pty (``os.openpty``) and plays a
scanner; the agent opens the slave side with pyserial exactly as it would
open ``/dev/ttyACM0``.  The port path the agent is given is a symlink (as
udev's ``/dev/scanner/...`` or ``/dev/serial/by-id/...`` links are):
:meth:`PtyScanner.unplug` closes the master (the agent's reads fail with
EIO) and :meth:`PtyScanner.plug` opens a new pty and re-points the link.

A reader thread records every byte the host writes and hands it to the
emulator's protocol (``on_host``); the SSI emulator also runs a job thread so
it can wait for the host's ``CMD_ACK`` between packets (stop-and-wait), as a
real decoder does.  Nothing here sleeps to synchronise: waits are on
conditions with deadlines.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

from drivers import honeywell, ssi
from drivers.ssi import NakCause, Opcode, SsiFramer, SsiPacket
from tests.support.polling import eventually

WAIT_S = 5.0
"""Longest any emulator or test waits for the other side."""


class PtyLine:
    """One pseudo-terminal: the scanner holds ``master``; ``path`` is the agent's end.

    The slave is put in raw mode at once (no echo, no CR/LF translation) and
    kept open here too, so its settings hold whatever the agent does.
    """

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class PtyScanner:
    """Base emulator: a pty behind a symlink, a reader thread, a record of host bytes."""

    def __init__(self, link: Path) -> None:
        self.link = link
        """The port path the agent opens (a symlink to the current pty)."""
        self.received = bytearray()
        """Every byte the host wrote, across plugs."""
        self.cond = threading.Condition()
        self.line: PtyLine | None = None
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self.plugs = 0
        self.plug()

    # -- cable -----------------------------------------------------------------------

    def plug(self) -> None:
        """Open a new pty and point the link at it (udev re-creating its symlink)."""
        assert self.line is None, "already plugged"
        line = PtyLine()
        tmp = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(line.path)
        tmp.replace(self.link)
        self.line = line
        self.plugs += 1
        self._stop = threading.Event()
        self._reader = threading.Thread(
            target=self._read, args=(line, self._stop), name="emulator", daemon=True
        )
        self._reader.start()

    def unplug(self) -> None:
        """Pull the cable: stop reading and close the pty (the host sees EIO)."""
        line, self.line = self.line, None
        assert line is not None, "not plugged"
        self._stop.set()
        if self._reader is not None:
            self._reader.join(WAIT_S)
        line.close()

    def close(self) -> None:
        """End of test: unplug if plugged."""
        if self.line is not None:
            self.unplug()

    def _read(self, line: PtyLine, stop: threading.Event) -> None:
        while not stop.is_set():
            ready, _, _ = select.select([line.master], [], [], 0.02)
            if not ready:
                continue
            try:
                data = os.read(line.master, 4096)
            except OSError:
                continue  # EIO while the host has the slave closed (between opens)
            if not data:
                continue
            with self.cond:
                self.received += data
                self.on_host(data)
                self.cond.notify_all()

    # -- scanner side ---------------------------------------------------------------

    def write(self, data: bytes, *, dribble: bool = False) -> None:
        """Send bytes to the host, at once or one byte per write."""
        assert self.line is not None, "not plugged"
        if dribble:
            for i in range(len(data)):
                os.write(self.line.master, data[i : i + 1])
        else:
            os.write(self.line.master, data)

    def on_host(self, data: bytes) -> None:
        """Protocol hook: bytes the host wrote (called with ``cond`` held)."""

    def wait(self, predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
        """Block (in a thread) until ``predicate`` holds; False on time-out."""
        with self.cond:
            return self.cond.wait_for(predicate, timeout)


class PlainScanner(PtyScanner):
    """A plain serial scanner: each bar code followed by a suffix (CRLF by default)."""

    def scan(self, code: str | bytes, *, suffix: bytes = b"\r\n", dribble: bool = False) -> None:
        data = code.encode() if isinstance(code, str) else code
        self.write(data + suffix, dribble=dribble)


class HoneywellScanner(PtyScanner):
    """A Honeywell scanner in serial-trigger mode answering menu commands.

    ``SYN T CR`` sends the next queued bar code (with a CR suffix); a menu
    command ``SYN M CR ... !`` is recorded and answered with the echo and an
    ACK before every punctuation mark, as the user guides describe.
    """

    def __init__(self, link: Path) -> None:
        self.codes: list[bytes] = []
        self.triggers = 0
        self.menu_commands: list[bytes] = []
        self.unknown = bytearray()
        self._buffer = bytearray()
        self.dribble = False
        super().__init__(link)

    def queue_code(self, code: str) -> None:
        with self.cond:
            self.codes.append(code.encode())

    def on_host(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        while buf:
            if buf.startswith(honeywell.TRIGGER_ON):
                del buf[:3]
                self.triggers += 1
                if self.codes:
                    self.write(self.codes.pop(0) + b"\r", dribble=self.dribble)
            elif buf.startswith(honeywell.TRIGGER_OFF):
                del buf[:3]
            elif buf.startswith(honeywell.MENU_PREFIX):
                ends = [i for i in (buf.find(b"!"), buf.find(b".")) if i >= 0]
                if not ends:
                    return
                end = min(ends)
                command = bytes(buf[: end + 1])
                del buf[: end + 1]
                self.menu_commands.append(command)
                body = command[len(honeywell.MENU_PREFIX) :]
                reply = b"".join(
                    b"\x06" + bytes((c,)) if c in b",;.!" else bytes((c,)) for c in body
                )
                self.write(reply, dribble=self.dribble)
            elif len(buf) < 3 and (
                honeywell.MENU_PREFIX.startswith(buf) or honeywell.TRIGGER_ON.startswith(buf)
            ):
                return
            else:
                self.unknown.append(buf.pop(0))


class SsiScanner(PtyScanner):
    """A Zebra decoder speaking SSI, byte for byte.

    Decodes are sent as DECODE_DATA packets, one at a time, each waiting for
    the host's CMD_ACK; a CMD_NAK RESEND from the host makes it resend the
    packet with the retransmit bit.  Host commands (BEEP, LED_ON, ...) are
    recorded and answered with CMD_ACK, or with CMD_NAK RESEND while
    ``nak_commands`` is above zero (the host must resend them).  A WAKEUP
    byte (0x00) between packets is counted and otherwise ignored, as a decoder
    that is awake does; ``command_gaps`` records, per host command, the
    seconds since the WAKEUP just before it (``None`` when there was none).
    """

    def __init__(self, link: Path) -> None:
        self.host = SsiFramer()
        self.acks = 0
        self.naks: list[int] = []
        self.commands: list[SsiPacket] = []
        self.nak_commands = 0
        self.failures: list[str] = []
        self.sent_packets: list[bytes] = []
        self.wakeups = 0
        self.command_gaps: list[float | None] = []
        self._wakeup_at: float | None = None
        self._last: bytes | None = None
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.jobs_pending = 0
        super().__init__(link)
        self._worker = threading.Thread(target=self._work, name="ssi-emulator", daemon=True)
        self._worker.start()

    def close(self) -> None:
        self._jobs.put(None)
        self._worker.join(WAIT_S)
        super().close()

    # -- host side -------------------------------------------------------------------

    def on_host(self, data: bytes) -> None:
        for i in range(len(data)):
            if self.host.buffered == 0 and data[i] == 0:
                self.wakeups += 1  # no packet starts with 0x00: a WAKEUP
                self._wakeup_at = time.monotonic()
                continue
            self._on_host_packets(data[i : i + 1])

    def _on_host_packets(self, data: bytes) -> None:
        for event in self.host.feed(data):
            if not isinstance(event, SsiPacket):
                self.failures.append(f"host sent a bad packet: {event}")
                continue
            if event.opcode == Opcode.CMD_ACK:
                self.acks += 1
            elif event.opcode == Opcode.CMD_NAK:
                cause = event.data[0] if event.data else -1
                self.naks.append(cause)
                if cause == NakCause.RESEND and self._last is not None:
                    self._send_packet(self._retransmit(self._last))
            else:
                self.commands.append(event)
                woke, self._wakeup_at = self._wakeup_at, None
                self.command_gaps.append(None if woke is None else time.monotonic() - woke)
                if self.nak_commands > 0:
                    self.nak_commands -= 1
                    self.write(ssi.cmd_nak(NakCause.RESEND, source=ssi.DECODER))
                else:
                    self.write(ssi.cmd_ack(source=ssi.DECODER))

    @staticmethod
    def _retransmit(packet: bytes) -> bytes:
        length, opcode, source, status = packet[:4]
        return ssi.encode_packet(
            opcode, packet[4:length], source=source, status=status | ssi.STATUS_RETRANSMIT
        )

    def _send_packet(self, packet: bytes, *, dribble: bool = False) -> None:
        self.sent_packets.append(packet)
        self.write(packet, dribble=dribble)

    # -- scripted decodes --------------------------------------------------------------

    def send_decode(
        self,
        data: bytes | str,
        *,
        barcode_type: int = 0x1B,
        chunk: int = ssi.MAX_DATA - 1,
        corrupt: bool = False,
        dribble: bool = False,
        lose_ack: bool = False,
    ) -> None:
        """Queue one decode: split into packets of ``chunk`` bytes of bar code.

        ``corrupt`` sends the first packet with a bad checksum (the host must
        NAK it and get the good one with the retransmit bit); ``lose_ack``
        resends each packet once more after its ACK, as a decoder does when
        the host's ACK was lost (the host must not count it twice).
        """
        payload = data.encode() if isinstance(data, str) else data
        parts = [payload[i : i + chunk] for i in range(0, len(payload), chunk)] or [b""]
        with self.cond:
            self.jobs_pending += 1
        self._jobs.put(lambda: self._decode(parts, barcode_type, corrupt, dribble, lose_ack))

    def _decode(
        self, parts: list[bytes], barcode_type: int, corrupt: bool, dribble: bool, lose_ack: bool
    ) -> None:
        for index, part in enumerate(parts):
            status = ssi.STATUS_CONTINUATION if index < len(parts) - 1 else 0
            packet = ssi.encode_packet(
                Opcode.DECODE_DATA, bytes((barcode_type,)) + part, source=ssi.DECODER, status=status
            )
            with self.cond:
                acks, naks = self.acks, len(self.naks)
                self._last = packet
                if corrupt and index == 0:
                    bad = packet[:-1] + bytes(((packet[-1] + 1) & 0xFF,))
                    self._send_packet(bad, dribble=dribble)
                else:
                    self._send_packet(packet, dribble=dribble)
                if not self.cond.wait_for(lambda a=acks: self.acks > a, WAIT_S):
                    self.failures.append(f"no CMD_ACK for {packet.hex(' ')}")
                    return
                if corrupt and index == 0 and len(self.naks) == naks:
                    self.failures.append("the corrupt packet was not NAKed")
                if lose_ack:
                    acks = self.acks
                    self._send_packet(self._retransmit(packet), dribble=dribble)
                    if not self.cond.wait_for(lambda a=acks: self.acks > a, WAIT_S):
                        self.failures.append(f"no CMD_ACK for the resend of {packet.hex(' ')}")
                        return
        self._last = None

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            finally:
                with self.cond:
                    self.jobs_pending -= 1
                    self.cond.notify_all()

    async def idle(self, within: float = WAIT_S) -> None:
        """Wait (from a coroutine) until every queued decode is acknowledged."""
        await eventually(lambda: self.jobs_pending == 0, within)
        assert not self.failures, self.failures


class FakeInputEvent:
    """An ``evdev.InputEvent`` stand-in: type, code, value."""

    __slots__ = ("code", "type", "value")

    def __init__(self, type: int, code: int, value: int) -> None:
        self.type = type
        self.code = code
        self.value = value


class FakeInputDevice:
    """An ``evdev.InputDevice`` stand-in: a real pipe to wait on, scripted events.

    :meth:`push` queues events and makes ``fd`` readable; :meth:`unplug`
    makes the next ``read`` fail with ENODEV, as a removed device does.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._r, self._w = os.pipe()
        self._events: list[FakeInputEvent] = []
        self._lock = threading.Lock()
        self.grabbed = False
        self.grabs = 0
        self.closed = False
        self.gone = False

    @property
    def fd(self) -> int:
        return self._r

    def push(self, events: list[tuple[int, int, int]]) -> None:
        with self._lock:
            self._events.extend(FakeInputEvent(*e) for e in events)
        os.write(self._w, b"\x01")

    def unplug(self) -> None:
        self.gone = True
        os.write(self._w, b"\x01")

    def read(self) -> list[FakeInputEvent]:
        with contextlib.suppress(BlockingIOError):
            os.set_blocking(self._r, False)
            os.read(self._r, 4096)
        if self.gone:
            raise OSError(19, "No such device")
        with self._lock:
            events, self._events = self._events, []
        if not events:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return events

    def grab(self) -> None:
        self.grabbed = True
        self.grabs += 1

    def ungrab(self) -> None:
        self.grabbed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._r)
            os.close(self._w)
