"""Pure framers: byte streams in, complete frames out.

A framer is a plain object fed ``bytes`` (``feed``) that returns the complete
frames found so far.  It does no I/O and starts no threads, so tests and fuzzers
drive it directly.  Unlike pyserial's ``Packetizer`` it has a hard cap on the
frame length: a scanner that never sends its terminator costs at most
``max_frame`` bytes of memory, and the discarded input is reported as a
:class:`FrameError` so the operator learns of it.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_FRAME = 4096
"""Longest frame accepted; GS1 DataMatrix tops out near 3,116 bytes."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete frame, terminator removed."""

    data: bytes


@dataclass(frozen=True, slots=True)
class FrameError:
    """Input that was discarded instead of framed, with the reason."""

    reason: str
    discarded: int
    """How many bytes were thrown away."""
    head: bytes = b""
    """The first bytes of the discarded frame (at most ``max_frame``), where the framer
    kept them: what a reply to the sender can echo."""


FrameEvent = Frame | FrameError

TERMINATORS: dict[str, bytes] = {
    "cr": b"\r",
    "lf": b"\n",
    "crlf": b"\r\n",
    "tab": b"\t",
}
"""Named terminators as they appear in config and firmware profiles."""


class LineFramer:
    """Split a stream on a terminator (CR, LF, CRLF, TAB or any bytes).

    With ``any_eol=True`` (the default for ``cr``/``lf``/``crlf``) a frame ends
    at CR, LF or CRLF alike, because installers rarely know which suffix the
    last person programmed into the scanner; a CRLF counts as one terminator
    even when the CR and the LF arrive in different reads.  Empty frames are
    skipped unless ``keep_empty`` is set (a protocol that answers every frame
    must answer an empty line too).

    An over-long frame is reported once, by one :class:`FrameError` when it
    ends (at its terminator, or at :meth:`flush`), however many reads it
    spans; its bytes past ``max_frame`` are dropped as they arrive.
    """

    def __init__(
        self,
        terminator: bytes | str = b"\r\n",
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        any_eol: bool | None = None,
        keep_empty: bool = False,
    ) -> None:
        if isinstance(terminator, str):
            try:
                terminator = TERMINATORS[terminator.lower()]
            except KeyError:
                raise ValueError(
                    f"Failed to use {terminator!r} as terminator: "
                    f"expected one of {sorted(TERMINATORS)}"
                ) from None
        if not terminator:
            raise ValueError("Failed to use an empty terminator: expected at least one byte")
        if max_frame < 1:
            raise ValueError(f"Failed to use max_frame={max_frame}: expected a positive size")
        self.terminator = terminator
        self.max_frame = max_frame
        self.any_eol = terminator in (b"\r", b"\n", b"\r\n") if any_eol is None else any_eol
        self.keep_empty = keep_empty
        self._sep = b"\n" if self.any_eol else terminator
        self._keep = len(self._sep) - 1
        """Bytes kept of an over-long frame: the start of a terminator split across reads."""
        self._buffer = bytearray()
        self._after_cr = False
        """The last read ended in CR: an LF starting the next one completes that CRLF."""
        self._discarding = False
        self._head = b""
        self._run = 0
        """Bytes of the over-long frame being discarded, so far."""
        self.discarded_bytes = 0
        """Total bytes thrown away because a frame was over-long."""

    @property
    def buffered(self) -> int:
        """Bytes held waiting for a terminator (never more than ``max_frame``)."""
        return len(self._buffer)

    @property
    def in_frame(self) -> bool:
        """True while a frame has begun and not ended (bytes held, or an over-long one)."""
        return self._discarding or bool(self._buffer)

    def feed(self, data: bytes) -> list[FrameEvent]:
        """Add bytes; return frames (and errors) completed by them, in order.

        A frame ends as soon as its terminator arrives (a CR-only scanner's code
        is complete at the CR); the LF of a CRLF that arrives in the next read
        is part of that terminator, not an empty frame.
        """
        events: list[FrameEvent] = []
        if not data:
            return events
        sep = self._sep
        if self.any_eol:
            if self._after_cr and data[0] == 0x0A:
                data = data[1:]
            self._after_cr = data[-1:] == b"\r"
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if not data:
                return events
        if sep not in data and (len(sep) == 1 or sep not in self._buffer[-self._keep :] + data):
            if self._discarding:
                self._buffer += data
                self._drop_excess()
                return events
            self._buffer += data
            if len(self._buffer) > self.max_frame:
                self._start_discarding()
            return events
        self._buffer += data
        *complete, rest = bytes(self._buffer).split(sep)
        for part in complete:
            if self._discarding:
                # The tail of an over-long frame: report it whole, resume with the next frame.
                self._run += len(part)
                self._end_discarding(events)
                continue
            if len(part) > self.max_frame:
                self._note_discard(events, len(part), part[: self.max_frame])
                continue
            if part or self.keep_empty:
                events.append(Frame(part))
        self._buffer = bytearray(rest)
        if len(rest) > self.max_frame:
            self._start_discarding()
        return events

    def _start_discarding(self) -> None:
        self._discarding = True
        self._head = bytes(self._buffer[: self.max_frame])
        self._run = 0
        self._drop_excess()

    def _drop_excess(self) -> None:
        """Drop what is held of the over-long frame but the start of a split terminator."""
        drop = len(self._buffer) - self._keep
        if drop > 0:
            self._run += drop
            del self._buffer[:drop]

    def _end_discarding(self, events: list[FrameEvent]) -> None:
        self._discarding = False
        head, self._head = self._head, b""
        run, self._run = self._run, 0
        self._note_discard(events, run, head)

    def _note_discard(self, events: list[FrameEvent], count: int, head: bytes) -> None:
        self.discarded_bytes += count
        events.append(
            FrameError(
                reason=f"frame too long ({count} bytes, over {self.max_frame})",
                discarded=count,
                head=head,
            )
        )

    def flush(self) -> list[FrameEvent]:
        """End of stream: return a final unterminated frame (or its error), if any."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._after_cr = False
        if self._discarding:
            self._run += len(rest)
            events: list[FrameEvent] = []
            self._end_discarding(events)
            return events
        if not rest:
            return []
        return [Frame(rest)]

    def abandon(self) -> bytes | None:
        """Give up the frame in progress (it took too long): its first bytes, or None if none.

        The framer then starts afresh, as after a terminator.
        """
        if not self.in_frame:
            return None
        head = self._head if self._discarding else bytes(self._buffer)
        if self._discarding:
            self.discarded_bytes += self._run + len(self._buffer)
        self._buffer.clear()
        self._discarding, self._head, self._run = False, b"", 0
        return head
