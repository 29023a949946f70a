"""USB HID POS bar code scanner input reports: layouts as data, and an assembler.

A scanner in HID POS mode (USB-IF *HID Point of Sale Usage Tables* 1.02, usage
page 0x8C "Bar Code Scanner", application collection usage 0x02) delivers each
bar code as one or more fixed-size input reports.  The usage table defines the
fields -- Symbology Identifier 1-3 (usages 0xFB-0xFD), Decoded Data (0xFE) and
Decode Data Continued (0xFF, a one-bit flag) -- but their byte positions come
from each device's report descriptor, so the positions live here as data
(:class:`HidPosLayout`) and profiles pick a layout by name.

Offsets count from the first byte of the report *including* the report ID, as
Linux ``hidraw`` delivers numbered reports.

Sources for the named layouts:

* ``honeywell``: Honeywell report descriptor (report ID 2; a length byte; AIM
  symbology identifier, 3 bytes; 56 data bytes; Honeywell code ID, 2 bytes,
  vendor page 0xFF66; one byte whose bit 0 is Decode Data Continued: 64 bytes),
  matched by recorded reports in HenkVanAsselt/python_hon_usbhid (README) and
  by NielsLeenheer/WebHidBarcodeScanner's parser.  Access-IS LSR116/LSR118/
  ATR110 manuals document the same 64-byte layout with an example.
* ``newland``: Newland/OEM engine manuals, "Acquire Scanned Data" (report ID 2,
  length at byte 1, data at 2-57, reserved 58-61, Newland symbology ID at 62,
  Decoded data continued at byte 63 bit 0; no AIM field).
* ``zebra``, ``datalogic`` and ``generic``: *unconfirmed* -- no vendor document
  or recording was found; they use the 64-byte arrangement of the usage table's
  fields shown above ("from the HID POS usage table").  Check them against a
  real report before relying on them.

>>> report = bytes([2, 3]) + b"]C0" + b"123".ljust(56, b"\\0") + bytes(3)
>>> HidPosAssembler(LAYOUTS["honeywell"]).feed(report)
[Frame(data=b']C0123')]
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.framing import DEFAULT_MAX_FRAME, Frame, FrameError, FrameEvent

AIM_FLAG = ord("]")
"""First character of an AIM symbology identifier (ISO/IEC 15424)."""


@dataclass(frozen=True, slots=True)
class HidPosLayout:
    """Where the fields of a bar code input report sit (byte offsets)."""

    report_size: int
    """Total bytes in one report, report ID included."""
    data_offset: int
    """First byte of Decoded Data."""
    data_size: int
    """Room for Decoded Data in one report."""
    continuation_offset: int
    """Byte holding the Decode Data Continued flag."""
    continuation_mask: int = 0x01
    """Bit of that byte that is set while more reports of the bar code follow."""
    report_id: int | None = 0x02
    """Expected first byte (the report ID), or ``None`` when reports are unnumbered."""
    length_offset: int | None = 1
    """Byte giving the number of valid data bytes, or ``None`` (data is NUL-padded)."""
    aim_offset: int | None = None
    """First of the 3 AIM symbology identifier bytes (``]xy``), or ``None``."""

    def __post_init__(self) -> None:
        ends = [self.data_offset + self.data_size, self.continuation_offset + 1]
        if self.length_offset is not None:
            ends.append(self.length_offset + 1)
        if self.aim_offset is not None:
            ends.append(self.aim_offset + 3)
        if (
            min(self.data_offset, self.continuation_offset, self.data_size) < 0
            or max(ends) > self.report_size
        ):
            raise ValueError(
                f"Failed to use {self!r} as HID POS layout: fields end past the report size"
            )
        if not 0 < self.continuation_mask <= 0xFF:
            raise ValueError(
                f"Failed to use continuation_mask={self.continuation_mask}: expected one byte's bits"
            )


_USAGE_TABLE_64 = HidPosLayout(
    report_size=64,
    report_id=0x02,
    length_offset=1,
    aim_offset=2,
    data_offset=5,
    data_size=56,
    continuation_offset=63,
    continuation_mask=0x01,
)

LAYOUTS: dict[str, HidPosLayout] = {
    "honeywell": _USAGE_TABLE_64,
    "newland": HidPosLayout(
        report_size=64,
        report_id=0x02,
        length_offset=1,
        aim_offset=None,
        data_offset=2,
        data_size=56,
        continuation_offset=63,
        continuation_mask=0x01,
    ),
    # Unconfirmed: the usage table's fields in the 64-byte arrangement above.
    "zebra": _USAGE_TABLE_64,
    "datalogic": _USAGE_TABLE_64,
    "generic": _USAGE_TABLE_64,
}
"""Named layouts; firmware profiles refer to them as ``[hidpos] layout = "<name>"``."""


class HidPosAssembler:
    """Join the reports of one bar code into a :class:`~drivers.framing.Frame`.

    Reports with another report ID (trigger or status reports) are ignored and
    counted.  A report shorter than the layout, or whose length byte exceeds the
    data room, is dropped and reported.  A bar code longer than ``max_frame`` is
    dropped (with its remaining reports) and reported.  With ``aim_prefix`` the
    AIM identifier of the first report (when it starts with ``]``) is put in
    front of the data.
    """

    def __init__(
        self, layout: HidPosLayout, *, max_frame: int = DEFAULT_MAX_FRAME, aim_prefix: bool = True
    ) -> None:
        if max_frame < 1:
            raise ValueError(f"Failed to use max_frame={max_frame}: expected a positive size")
        self.layout = layout
        self.max_frame = max_frame
        self.aim_prefix = aim_prefix
        self._buffer = bytearray()
        self._aim = b""
        self._started = False
        self._discarding = False
        self.discarded_bytes = 0
        """Total bytes dropped (malformed reports, over-long bar codes)."""
        self.ignored_reports = 0
        """Reports with another report ID (not bar code data)."""

    @property
    def buffered(self) -> int:
        """Bytes of a bar code being joined (never more than ``max_frame``)."""
        return len(self._buffer) + len(self._aim)

    def feed(self, report: bytes) -> list[FrameEvent]:
        """Process one input report; return the frame it completes, if any."""
        layout = self.layout
        if layout.report_id is not None and report[:1] != bytes((layout.report_id,)):
            self.ignored_reports += 1
            return []
        if len(report) < layout.report_size:
            return self._drop(f"short report ({len(report)} of {layout.report_size} bytes)", report)
        if layout.length_offset is not None:
            size = report[layout.length_offset]
            if size > layout.data_size:
                return self._drop(
                    f"length byte {size} exceeds the report's {layout.data_size} data bytes",
                    report,
                )
            chunk = report[layout.data_offset : layout.data_offset + size]
        else:
            chunk = report[layout.data_offset : layout.data_offset + layout.data_size].rstrip(b"\0")
        more = bool(report[layout.continuation_offset] & layout.continuation_mask)
        events: list[FrameEvent] = []
        if not self._started:
            self._started = True
            self._aim = b""
            if self.aim_prefix and layout.aim_offset is not None:
                aim = report[layout.aim_offset : layout.aim_offset + 3]
                if aim[0] == AIM_FLAG:
                    self._aim = aim
        if self._discarding:
            self._note_discard(events, len(chunk), "tail of an over-long bar code")
        elif len(self._aim) + len(self._buffer) + len(chunk) > self.max_frame:
            self._note_discard(
                events,
                len(self._buffer) + len(chunk),
                f"bar code too long (over {self.max_frame} bytes)",
            )
            self._buffer.clear()
            self._aim = b""
            self._discarding = True
        else:
            self._buffer += chunk
        if more:
            return events
        if not self._discarding and (self._buffer or self._aim):
            events.append(Frame(self._aim + bytes(self._buffer)))
        self._reset()
        return events

    def _reset(self) -> None:
        self._buffer.clear()
        self._aim = b""
        self._started = False
        self._discarding = False

    def _note_discard(self, events: list[FrameEvent], count: int, reason: str) -> None:
        self.discarded_bytes += count
        events.append(FrameError(reason, count))

    def _drop(self, reason: str, report: bytes) -> list[FrameEvent]:
        """A malformed report also ends the bar code being joined."""
        events: list[FrameEvent] = []
        pending = len(self._buffer)
        self._note_discard(events, pending + len(report), reason)
        self._reset()
        return events
