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
    last person programmed into the scanner; empty frames (the LF of a CRLF
    seen as two terminators) are skipped.
    """

    def __init__(
        self,
        terminator: bytes | str = b"\r\n",
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        any_eol: bool | None = None,
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
        self._buffer = bytearray()
        self._discarding = False
        self.discarded_bytes = 0
        """Total bytes thrown away because a frame was over-long."""

    @property
    def buffered(self) -> int:
        """Bytes held waiting for a terminator (never more than ``max_frame``)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[FrameEvent]:
        """Add bytes; return frames (and errors) completed by them, in order.

        A frame ends as soon as its terminator arrives (a CR-only scanner's code
        is complete at the CR); the LF of a CRLF that arrives in the next read
        just ends an empty frame, which is skipped.
        """
        events: list[FrameEvent] = []
        if not data:
            return events
        if self.any_eol:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            sep = b"\n"
        else:
            sep = self.terminator
        self._buffer += data
        if sep not in data and (len(sep) == 1 or sep not in self._buffer):
            if len(self._buffer) > self.max_frame:
                # Keep what could be the start of a multi-byte terminator.
                keep = len(sep) - 1
                self._note_discard(events, len(self._buffer) - keep, "frame too long")
                self._discarding = True
                del self._buffer[: len(self._buffer) - keep]
            return events
        *complete, rest = bytes(self._buffer).split(sep)
        for part in complete:
            if self._discarding:
                # The tail of an over-long frame: drop it, resume with the next frame.
                self._discarding = False
                self._note_discard(events, len(part), "frame too long")
                continue
            if len(part) > self.max_frame:
                self._note_discard(events, len(part), "frame too long")
                continue
            if part:
                events.append(Frame(part))
        if len(rest) > self.max_frame:
            keep = len(sep) - 1
            self._note_discard(events, len(rest) - keep, "frame too long")
            self._discarding = True
            rest = rest[len(rest) - keep :]
        self._buffer = bytearray(rest)
        return events

    def _note_discard(self, events: list[FrameEvent], count: int, reason: str) -> None:
        self.discarded_bytes += count
        if count:
            events.append(
                FrameError(reason=f"{reason} (over {self.max_frame} bytes)", discarded=count)
            )

    def flush(self) -> list[FrameEvent]:
        """End of stream: return a final unterminated frame, if any."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        discarding, self._discarding = self._discarding, False
        if discarding or not rest:
            return []
        return [Frame(rest)]
