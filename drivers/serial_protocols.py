"""The protocols a serial port speaks, as pure or loop-driven objects that do no I/O themselves.

:class:`ScanLineFramer` frames plain bar code lines; :class:`HoneywellStream` splits a Honeywell
stream into bar code lines and menu replies; :class:`SsiHost` is the host side of Zebra SSI's
stop-and-wait exchange (:mod:`drivers.ssi` holds the packets, framer and session it drives).
:class:`drivers.serialport.SerialSource` picks one per port and owns the port itself."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from drivers import honeywell, ssi
from drivers.framing import DEFAULT_MAX_FRAME, FrameError, FrameEvent, LineFramer
from drivers.ssi_symbology import with_aim

log = logging.getLogger(__name__)

MENU_REPLY_TIMEOUT_S: Final = 2.0
"""How long a Honeywell menu reply is waited for before the stream stops expecting it."""
SSI_RESPONSE_TIMEOUT_S: Final = 2.0
"""The SSI "serial response time-out" (the decoder's default)."""
SSI_WAKEUP_DELAY_S: Final = 0.02
"""Pause between the SSI WAKEUP byte and the command it wakes the decoder for: the
guides ask for at least 10 ms and less than 1 s (SE-923 integration guide, SSI
chapter, "WAKEUP"; Zebra DS8108 PRG: the decoder ignores what it receives in the
10 ms after waking)."""


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


class TimerHandle(Protocol):
    """What :class:`SsiHost` keeps of an armed timer (an :class:`asyncio.TimerHandle`)."""

    def cancel(self) -> None: ...


Writer = Callable[[bytes], Awaitable[None]]
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
