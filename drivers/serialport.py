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
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import serial

from drivers import honeywell, hotplug, ssi
from drivers.device import DeviceSource
from drivers.framing import DEFAULT_MAX_FRAME, Frame, FrameError, FrameEvent
from drivers.naming import source_label
from drivers.profiles import Profile
from drivers.reader import device_errors
from drivers.serial_protocols import (
    SSI_RESPONSE_TIMEOUT_S,
    HoneywellStream,
    ScanLineFramer,
    SsiHost,
)
from drivers.source_profiles import describe, effective_protocol, load_source_profile, ssi_packets
from scanner_agent.kernel import ConfigError, DeviceError, DeviceUnavailable, ScanOutcome, Verdict

log = logging.getLogger(__name__)

READ_TIMEOUT_S: Final = 0.5
"""Longest a read blocks where the port cannot cancel a read (URL handlers)."""
WRITE_TIMEOUT_S: Final = 2.0
"""Longest a write may stall (flow control) before the link counts as broken."""
SETUP_COMMANDS: Final = ("aim_on", "suffix_cr")
"""Profile ``[commands]`` pushed to the scanner each time its port is opened."""

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
        source_label("serial", name, options["port"]),
        options["port"],
        profile=load_source_profile(options["profile"], "source"),
        protocol=options["protocol"],
        baudrate=options["baudrate"],
        reconnect_max_s=options["reconnect_max_s"],
    )
