"""Serial scanners: RS-232 and USB CDC-ACM ports, through pyserial.

One :class:`SerialSource` reads one port (a path such as ``/dev/ttyACM0`` or
a ``/dev/serial/by-id/...`` link, or any pyserial URL such as ``loop://``)
and speaks one of three protocols, chosen by the source's ``protocol`` key or
its firmware profile's ``[serial].protocol``:

``plain``
    Bar codes as text ending in the profile's terminator (CR, LF or CRLF
    alike by default), framed by :class:`drivers.framing.LineFramer`.
    Feedback: the profile's ``good_read``/``bad_read``/``duplicate_read``
    bytes, written as they are, or nothing.
``honeywell``
    The same lines, plus Honeywell serial commands: :meth:`SerialSource.trigger`
    writes ``SYN T CR`` (or the profile's ``trigger_on``), and feedback
    commands that are menu commands (``SYN M CR ...``) have their replies
    (``...ACK!``) cut out of the stream by :class:`HoneywellStream`, so they
    never glue onto the next bar code.
``ssi``
    Zebra SSI packets (:mod:`drivers.ssi`): every packet from the decoder is
    acknowledged, a bad checksum is answered with ``CMD_NAK RESEND``,
    multipacket decodes are joined, and host commands (the profile's BEEP/LED
    feedback packets, ``START_DECODE`` for a trigger) go out one at a time,
    each waiting for the decoder's ``CMD_ACK`` (stop-and-wait), resent with
    the retransmit bit on ``NAK RESEND`` or a time-out.  Unless the line uses
    RTS/CTS flow control, each host command is preceded by the WAKEUP byte
    (0x00) and a 20 ms pause, so a decoder in low-power mode does not lose
    the command's first byte.  Each decode gets the
    AIM identifier of its bar code type where that is known
    (:mod:`drivers.ssi_symbology`), unless the profile says ``aim_prefix = false``.

Set-up: each time the port is opened, the profile's ``aim_on`` and
``suffix_cr`` commands (when it defines them) are sent before anything else
-- Honeywell menu commands, SSI ``PARAM_SEND`` packets or raw bytes, in the
protocol's way -- so a scanner that lost its settings (a volatile ``!`` menu
command, a replaced unit) sends the AIM prefix and suffix the profile expects.
A profile without them sends nothing.

The reading, reconnecting and status attributes (``connected``, ``device``,
``model``, ``last_scan_at``, ``errors``, ``last_outcome``) come from
:class:`drivers.device.DeviceSource`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import serial

from drivers import honeywell, hotplug, ssi
from drivers.device import (
    DeviceSource,
    describe,
    device_errors,
    effective_protocol,
    load_source_profile,
    ssi_packets,
)
from drivers.framing import DEFAULT_MAX_FRAME, Frame, FrameError, FrameEvent, LineFramer
from drivers.profiles import Profile
from drivers.registry import source_name
from drivers.ssi_symbology import with_aim
from scanner_agent.kernel import ConfigError, DeviceError, DeviceUnavailable, ScanOutcome, Verdict

log = logging.getLogger(__name__)

READ_TIMEOUT_S: Final = 0.5
"""Longest a read blocks where the port cannot cancel a read (URL handlers)."""
WRITE_TIMEOUT_S: Final = 2.0
"""Longest a write may stall (flow control) before the link counts as broken."""
MENU_REPLY_TIMEOUT_S: Final = 2.0
"""How long a Honeywell menu reply is waited for before the stream stops expecting it."""
SSI_RESPONSE_TIMEOUT_S: Final = 2.0
"""The SSI "serial response time-out" (the decoder's default)."""
SETUP_COMMANDS: Final = ("aim_on", "suffix_cr")
"""Profile ``[commands]`` pushed to the scanner each time its port is opened."""
SSI_WAKEUP_DELAY_S: Final = 0.02
"""Pause between the SSI WAKEUP byte and the command it wakes the decoder for: the
guides ask for at least 10 ms and less than 1 s (SE-923 integration guide, SSI
chapter, "WAKEUP"; Zebra DS8108 PRG: the decoder ignores what it receives in the
10 ms after waking)."""

_PARITY = {
    "none": serial.PARITY_NONE,
    "even": serial.PARITY_EVEN,
    "odd": serial.PARITY_ODD,
    "mark": serial.PARITY_MARK,
    "space": serial.PARITY_SPACE,
}


@dataclass(frozen=True, slots=True)
class PortSettings:
    """Line settings: the source's ``baudrate``, else the profile's, else 9600 8-N-1."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "none"
    stopbits: int = 1
    flow_control: str = "none"

    @classmethod
    def from_profile(cls, profile: Profile, baudrate: int | None = None) -> PortSettings:
        """Fill in what the profile confirms; keep the defaults elsewhere."""
        s = profile.serial
        default = cls()
        return cls(
            baudrate=baudrate or (s.baudrate if s and s.baudrate else default.baudrate),
            bytesize=s.bytesize if s and s.bytesize else default.bytesize,
            parity=s.parity if s and s.parity else default.parity,
            stopbits=s.stopbits if s and s.stopbits else default.stopbits,
            flow_control=s.flow_control if s and s.flow_control else default.flow_control,
        )

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``serial.serial_for_url``."""
        return {
            "baudrate": self.baudrate,
            "bytesize": self.bytesize,
            "parity": _PARITY[self.parity],
            "stopbits": self.stopbits,
            "rtscts": self.flow_control == "rtscts",
            "xonxoff": self.flow_control == "xonxoff",
        }


class Port(Protocol):
    """The part of a pyserial port a :class:`SerialLink` uses."""

    @property
    def in_waiting(self) -> int:
        """Bytes received and not yet read."""
        ...

    def read(self, size: int = 1) -> bytes:
        """Read up to ``size`` bytes (blocks until one arrives or the time-out)."""
        ...

    def write(self, data: bytes, /) -> int | None:
        """Write ``data``."""
        ...

    def close(self) -> None:
        """Close the port."""
        ...


class SerialLink:
    """An open pyserial port as a :class:`drivers.device.Link`."""

    def __init__(self, port: Port, device: str) -> None:
        self.port = port
        self.device = device

    def read(self) -> bytes:
        """What is waiting, or at least one byte (empty on time-out or cancel)."""
        return self.port.read(self.port.in_waiting or 1)

    def cancel(self) -> None:
        """Wake a blocked read (pyserial's ``cancel_read`` where the port has it)."""
        cancel = getattr(self.port, "cancel_read", None)
        if cancel is not None:
            cancel()

    def write(self, data: bytes) -> None:
        """Write all of ``data`` (blocking; call it from a worker thread).

        Raises:
            DeviceError: the write failed or timed out.
        """
        with device_errors(self.device, "write to"):
            self.port.write(data)

    def close(self) -> None:
        """Close the port."""
        self.port.close()


def open_port(url: str, settings: PortSettings) -> SerialLink:
    """Open ``url`` (a path or pyserial URL); a path is locked against other readers.

    Raises:
        DeviceUnavailable: the port is absent, busy or not permitted.
        ConfigError: pyserial refuses the URL or the settings.
    """
    kwargs = settings.kwargs()
    if "://" not in url:
        kwargs["exclusive"] = True
    try:
        with device_errors(url, "open", DeviceUnavailable):
            port = serial.serial_for_url(
                url, timeout=READ_TIMEOUT_S, write_timeout=WRITE_TIMEOUT_S, **kwargs
            )
    except ValueError as exc:
        raise ConfigError(f"Failed to open {url!r} as serial port: {exc}") from exc
    return SerialLink(port, url)


# -- lines ------------------------------------------------------------------------


class ScanLineFramer:
    """A :class:`drivers.framing.LineFramer` plus :meth:`line_end`, which the Honeywell
    stream needs to find where a bar code line ends among menu replies.

    Framing itself is the shared framer's: a frame ends the moment its terminator
    arrives (a CR-only scanner included), and the LF of a split CRLF is dropped.
    """

    def __init__(self, terminator: bytes = b"\r\n", *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.framer = LineFramer(terminator, max_frame=max_frame)
        self.any_eol = self.framer.any_eol
        self.terminator = terminator
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[FrameEvent]:
        """Add bytes; return the frames (and errors) they complete."""
        return self.framer.feed(data)

    def line_end(self, data: bytearray, start: int = 0) -> int:
        """Index of the last byte of the first terminator in ``data`` at or after ``start``, or -1."""
        if self.any_eol:
            found = [i for i in (data.find(b"\r", start), data.find(b"\n", start)) if i >= 0]
            return min(found) if found else -1
        i = data.find(self.terminator, start)
        return i + len(self.terminator) - 1 if i >= 0 else -1


# -- Honeywell: lines and menu replies -------------------------------------------


class HoneywellStream:
    """Split a Honeywell serial stream into bar code lines and menu replies (pure).

    Menu replies (``232BAD9`` ACK ``!``) carry no line terminator, so after a
    menu command was written the stream holds the current line until it
    either ends with a terminator (a bar code) or with a status byte and a
    storage mark (a reply).  Replies are looked for only while one is
    expected (:meth:`expect_reply`, for at most ``reply_timeout`` seconds),
    so bar code data is never mistaken for one.
    """

    def __init__(
        self,
        terminator: bytes = b"\r\n",
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        reply_timeout: float = MENU_REPLY_TIMEOUT_S,
    ) -> None:
        self.lines = ScanLineFramer(terminator, max_frame=max_frame)
        self.reply_timeout = reply_timeout
        self._line = bytearray()
        self._expected: collections.deque[float] = collections.deque()

    @property
    def expecting(self) -> int:
        """Menu replies still expected."""
        return len(self._expected)

    @property
    def buffered(self) -> int:
        """Bytes held for an unfinished line or reply (at most about ``2 * max_frame``)."""
        return len(self._line) + self.lines.framer.buffered

    def expect_reply(self, now: float, count: int = 1) -> None:
        """A menu command was written at ``now`` (``time.monotonic()``)."""
        self._expected.extend([now + self.reply_timeout] * count)

    def feed(self, data: bytes, now: float) -> list[FrameEvent | honeywell.MenuReply]:
        """Add bytes read at ``now``; return frames, errors and replies in order."""
        while self._expected and self._expected[0] < now:
            self._expected.popleft()
        if not self._expected and not self._line:
            return list(self.lines.feed(data))
        self._line += data
        line = self._line
        out: list[FrameEvent | honeywell.MenuReply] = []
        while line:
            if not self._expected:
                out.extend(self.lines.feed(bytes(line)))
                line.clear()
                break
            if len(line) < len(honeywell.MENU_PREFIX) and honeywell.MENU_PREFIX.startswith(line):
                break  # maybe the start of an echoed SYN M CR
            start = len(honeywell.MENU_PREFIX) if line.startswith(honeywell.MENU_PREFIX) else 0
            end = _reply_end(line, start)
            cut = self.lines.line_end(line, start)
            if end >= 0 and (cut < 0 or end < cut):
                raw = bytes(line[: end + 1])
                del line[: end + 1]
                self._expected.popleft()
                out.append(self._reply(raw))
                continue
            if cut >= 0:
                out.extend(self.lines.feed(bytes(line[: cut + 1])))
                del line[: cut + 1]
                continue
            if len(line) > self.lines.max_frame:
                out.extend(self.lines.feed(bytes(line)))
                line.clear()
            break
        return out

    @staticmethod
    def _reply(raw: bytes) -> honeywell.MenuReply | FrameError:
        try:
            return honeywell.MenuReply(tuple(honeywell.parse_menu_reply(raw)), raw)
        except ValueError as exc:
            return FrameError(str(exc), len(raw))


def _reply_end(line: bytearray, start: int) -> int:
    """Index of the storage mark ending the first menu reply in ``line``, or -1."""
    for i in range(start + 1, len(line)):
        if line[i] in b".!" and line[i - 1] in (0x05, 0x06, 0x15):
            return i
    return -1


# -- SSI: session, command queue, response timer ------------------------------------


Writer = Callable[[bytes], Awaitable[None]]


class TimerHandle(Protocol):
    """What :class:`SsiHost` keeps of an armed timer (an :class:`asyncio.TimerHandle`)."""

    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], TimerHandle]
"""Arms a timer: ``(seconds, callback) -> handle`` (the running loop's ``call_later``)."""


class SsiHost:
    """The host end of one SSI link, on the event loop.

    Wraps :class:`drivers.ssi.SsiSession` with the I/O it leaves to the
    caller: writes go to ``write`` in order, host commands wait in a queue
    while another one waits for its ACK, and the response timer calls
    :meth:`drivers.ssi.SsiSession.timeout`.  The timer starts when a command is
    written and starts again at each packet of a multipacket reply
    (:class:`drivers.ssi.ReplyContinued`), so only silence, not a long reply,
    makes the command go out again.
    """

    def __init__(
        self,
        write: Writer,
        *,
        on_error: Callable[[str], None],
        max_decode: int = DEFAULT_MAX_FRAME,
        response_timeout: float = SSI_RESPONSE_TIMEOUT_S,
        aim_prefix: bool = True,
        wakeup: bool = False,
        wakeup_delay: float = SSI_WAKEUP_DELAY_S,
        call_later: CallLater | None = None,
    ) -> None:
        self.session = ssi.SsiSession(max_decode=max_decode, wakeup=wakeup)
        self._call_later = call_later
        """Timer factory; ``None``: the running loop's ``call_later`` (tests pass a fake clock)."""
        self.wakeup_delay = wakeup_delay
        """Seconds between the WAKEUP byte and the command (when ``wakeup``)."""
        self.aim_prefix = aim_prefix
        """Put the AIM identifier of the bar code type in front of each decode
        (:mod:`drivers.ssi_symbology`), as a scanner sending AIM prefixes would."""
        self._write = write
        self._on_error = on_error
        self.response_timeout = response_timeout
        self._queue: collections.deque[bytes] = collections.deque()
        self._timer: TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.acked: list[int] = []
        """Opcodes of host commands the decoder acknowledged, in order."""
        self.failed: list[ssi.CommandFailed] = []
        """Host commands refused or never acknowledged."""
        self.discarded_bytes = 0
        """Bytes outside any packet (line noise, the remains of bad packets)."""

    async def receive(self, data: bytes) -> list[bytes]:
        """Process bytes from the decoder; return the complete bar codes."""
        return await self._process(self.session.receive(data))

    async def command(self, packet: bytes) -> None:
        """Queue one host command packet (sent when no other is waiting)."""
        self._queue.append(packet)
        await self._next()

    def close(self) -> None:
        """Stop the timer and drop queued commands (the link is gone)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        for task in self._tasks:
            task.cancel()

    async def _next(self) -> None:
        if self.session.pending is not None or not self._queue:
            return
        data = self.session.send(self._queue.popleft())
        self._arm()
        await self._send(data)

    async def _send(self, data: bytes) -> None:
        """Write ``data``; a leading WAKEUP byte goes alone, then the pause, then the rest.

        No SSI packet starts with 0x00 (its length is at least 4), so a leading
        zero is always the WAKEUP the session put in front of a host command.
        """
        if data[:1] == ssi.WAKEUP:
            await self._write(ssi.WAKEUP)
            await asyncio.sleep(self.wakeup_delay)
            data = data[1:]
        await self._write(data)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        call_later = self._call_later or asyncio.get_running_loop().call_later
        self._timer = call_later(self.response_timeout, self._expired)

    def _expired(self) -> None:
        self._timer = None
        events = self.session.timeout()
        if self.session.pending is not None:
            self._arm()
        task = asyncio.get_running_loop().create_task(self._after_timeout(events))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after_timeout(self, events: list[ssi.SessionEvent]) -> None:
        await self._process(events)

    async def _process(self, events: list[ssi.SessionEvent]) -> list[bytes]:
        frames: list[bytes] = []
        for event in events:
            if isinstance(event, ssi.Write):
                await self._send(event.data)
            elif isinstance(event, ssi.Decode):
                data = event.data
                frames.append(with_aim(event.barcode_type, data) if self.aim_prefix else data)
            elif isinstance(event, ssi.CommandAcked | ssi.CommandFailed):
                if self._timer is not None and self.session.pending is None:
                    self._timer.cancel()
                    self._timer = None
                if isinstance(event, ssi.CommandAcked):
                    self.acked.append(event.opcode)
                else:
                    self.failed.append(event)
                    self._on_error(f"SSI command 0x{event.opcode:02X} failed: {event.reason}")
                await self._next()
            elif isinstance(event, ssi.ReplyContinued):
                # The decoder is answering: a long multipacket reply gets the whole
                # response time-out for each packet, not for all of them together.
                if self.session.pending == event.opcode:
                    self._arm()
            elif isinstance(event, ssi.Received):
                log.debug("SSI packet 0x%02X from the decoder", event.packet.opcode)
            elif isinstance(event, ssi.SsiError) and event.kind is ssi.SsiErrorKind.GARBAGE:
                # Resynchronising after a bad checksum drops the bad packet's bytes:
                # the checksum error was reported; the bytes are only worth a debug line.
                self.discarded_bytes += event.discarded
                log.debug("SSI: %s", event.reason)
            else:
                self._on_error(event.reason)
        return frames


# -- the source ----------------------------------------------------------------------------


class SerialSource(DeviceSource[bytes]):
    """Reads one serial scanner (see the module docstring for protocols and feedback)."""

    def __init__(
        self,
        name: str,
        port: str,
        *,
        profile: Profile,
        protocol: str | None = None,
        baudrate: int | None = None,
        reconnect_initial_s: float = 0.05,
        reconnect_max_s: float = 5.0,
        response_timeout_s: float = SSI_RESPONSE_TIMEOUT_S,
        opener: Callable[[str, PortSettings], SerialLink] = open_port,
    ) -> None:
        super().__init__(
            name,
            port,
            model=describe(profile),
            reconnect_initial_s=reconnect_initial_s,
            reconnect_max_s=reconnect_max_s,
        )
        self.profile = profile
        self.protocol = effective_protocol(profile, protocol)
        """``plain``, ``honeywell`` or ``ssi``."""
        self.settings = PortSettings.from_profile(profile, baudrate)
        self.response_timeout_s = response_timeout_s
        self.ssi_wakeup = self.settings.flow_control != "rtscts"
        """SSI: send the WAKEUP byte before each host command (no RTS/CTS on the line)."""
        self.terminator = profile.framing.terminator or b"\r\n"
        self.max_frame = profile.framing.max_frame or DEFAULT_MAX_FRAME
        self._opener = opener
        cmds = profile.commands
        self.commands: dict[str, bytes | None] = {
            "aim_on": cmds.aim_on,
            "suffix_cr": cmds.suffix_cr,
            "trigger_on": cmds.trigger_on,
            "trigger_off": cmds.trigger_off,
            "good_read": cmds.good_read,
            "bad_read": cmds.bad_read,
            "duplicate_read": cmds.duplicate_read or cmds.bad_read,
        }
        if self.protocol == "honeywell":
            self.commands["trigger_on"] = cmds.trigger_on or honeywell.TRIGGER_ON
            self.commands["trigger_off"] = cmds.trigger_off or honeywell.TRIGGER_OFF
        elif self.protocol == "ssi":
            self.commands["trigger_on"] = cmds.trigger_on or ssi.start_decode()
            self.commands["trigger_off"] = cmds.trigger_off or ssi.stop_decode()
            for key, command in self.commands.items():
                if command is not None:
                    try:
                        ssi_packets(command)
                    except ValueError as exc:
                        raise ConfigError(f"{name}: [commands].{key}: {exc}") from None
        self._stream: HoneywellStream | ScanLineFramer | None = None
        self._ssi: SsiHost | None = None
        self._write_lock = asyncio.Lock()

    # -- DeviceSource hooks ------------------------------------------------------------

    def _open(self) -> SerialLink:
        return self._opener(self.device, self.settings)

    def _interest(self) -> hotplug.Interest | None:
        # A path can come back with a tty; a pyserial URL (socket://, rfc2217://) cannot.
        return None if "://" in self.device else hotplug.Interest(("tty",))

    async def _connected(self, link: Any) -> None:
        if self.protocol == "ssi":
            self._ssi = SsiHost(
                lambda data: self._write(link, data),
                on_error=self._ssi_error,
                max_decode=self.max_frame,
                response_timeout=self.response_timeout_s,
                aim_prefix=self.profile.framing.aim_prefix is not False,
                wakeup=self.ssi_wakeup,
            )
        elif self.protocol == "honeywell":
            self._stream = HoneywellStream(self.terminator, max_frame=self.max_frame)
        else:
            self._stream = ScanLineFramer(self.terminator, max_frame=self.max_frame)
        await self._push_setup(link)

    async def _push_setup(self, link: Any) -> None:
        """Send the profile's set-up commands (:data:`SETUP_COMMANDS`), in order."""
        for key in SETUP_COMMANDS:
            command = self.commands[key]
            if command is None:
                continue
            try:
                await self._send(link, command)
            except DeviceError as exc:  # the reader notices the lost link and reconnects
                log.warning("%s: %s not sent: %s", self.name, key, exc)
                return
            log.info("%s: sent the profile's %s command", self.name, key)

    def _disconnected(self, link: Any) -> None:
        if self._ssi is not None:
            self._ssi.close()
        self._ssi = None
        self._stream = None

    async def _handle(self, link: Any, data: bytes) -> None:
        if self._ssi is not None:
            for frame in await self._ssi.receive(data):
                await self._submit(frame)
            return
        stream = self._stream
        events: list[FrameEvent | honeywell.MenuReply]
        if isinstance(stream, HoneywellStream):
            events = stream.feed(data, time.monotonic())
        elif stream is not None:
            events = list(stream.feed(data))
        else:
            return
        for event in events:
            if isinstance(event, Frame):
                await self._submit(event.data)
            elif isinstance(event, FrameError):
                self._error("%s from %s", event.reason, self.device)
            elif event.ok:
                log.debug("%s: menu reply %r", self.name, event.raw)
            else:
                self._error("menu command refused: %r", event.raw)

    async def _feedback(self, link: Any, outcome: ScanOutcome) -> None:
        if outcome.verdict is Verdict.ACCEPTED:
            key = "good_read"
        elif outcome.verdict is Verdict.DUPLICATE:
            key = "duplicate_read"
        else:
            key = "bad_read"
        command = self.commands[key]
        if command is None:
            log.debug("%s: no %s command in profile %s", self.name, key, self.profile.id)
            return
        await self._send(link, command)

    # -- writing ---------------------------------------------------------------------------

    def _ssi_error(self, message: str) -> None:
        self._error("%s", message)

    async def _write(self, link: Any, data: bytes) -> None:
        """Write in order, off the event loop (on this device's write lane)."""
        async with self._write_lock:
            await self._write_link(link.write, data)

    async def _send(self, link: Any, command: bytes) -> None:
        """Send a profile command the way the protocol wants it."""
        if self._ssi is not None:
            for packet in ssi_packets(command):
                await self._ssi.command(packet)
            return
        if isinstance(self._stream, HoneywellStream):
            replies = command.count(honeywell.MENU_PREFIX)
            if replies:
                self._stream.expect_reply(time.monotonic(), replies)
        await self._write(link, command)

    async def trigger(self, on: bool = True) -> bool:
        """Pull (or release) the trigger from the host; False when there is no way to.

        Honeywell: ``SYN T CR``/``SYN U CR`` (the scanner must be in manual
        trigger mode); SSI: ``START_DECODE``/``STOP_DECODE``; plain: the
        profile's ``trigger_on``/``trigger_off`` if it has them.
        """
        command = self.commands["trigger_on" if on else "trigger_off"]
        link = self._link
        if command is None or link is None:
            return False
        try:
            await self._send(link, command)
        except DeviceError as exc:
            log.warning("%s: trigger not sent: %s", self.name, exc)
            return False
        return True


def build(name: str, options: dict[str, Any]) -> SerialSource:
    """Factory used by :mod:`drivers.registry`."""
    return SerialSource(
        source_name("serial", name, options),
        options["port"],
        profile=load_source_profile(options["profile"], "source"),
        protocol=options["protocol"],
        baudrate=options["baudrate"],
        reconnect_max_s=options["reconnect_max_s"],
    )
