"""USB HID POS bar code scanner input reports: layouts as data, and an assembler.

A scanner in HID POS mode (USB-IF *HID Point of Sale Usage Tables* 1.02, usage
page 0x8C "Bar Code Scanner", application collection usage 0x02) delivers each
bar code as one or more fixed-size input reports.  The usage table defines the
fields -- Symbology Identifier 1-3 (usages 0xFB-0xFD), Decoded Data (0xFE) and
Decode Data Continued (0xFF, a one-bit flag) -- but their byte positions come
from each device's report descriptor, so the positions are data
(:class:`HidPosLayout`).  The named layouts in :data:`LAYOUTS` are the
defaults; a firmware profile names one (``[hidpos] layout``), may override any
of its fields, or defines a layout in full with the same keys
(:data:`FIELDS`, :func:`resolve_layout`; see ``docs/firmware-profiles.md``).

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

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from drivers.framing import DEFAULT_MAX_FRAME, Frame, FrameError, FrameEvent
from scanner_agent.kernel import ConfigError

AIM_FLAG = ord("]")
"""First character of an AIM symbology identifier (ISO/IEC 15424)."""
AIM_SIZE: Final = 3
"""Bytes of an AIM symbology identifier field (``]`` plus code character and modifier)."""
MAX_REPORT_SIZE: Final = 4096
"""Largest ``report_size`` accepted (HID POS scanners send 64-byte reports)."""


class LayoutError(ConfigError):
    """A layout field is out of range, runs past the report, or overlaps another field.

    A config error: layouts come from firmware profiles, where it names the ``[hidpos]`` key.
    """

    def __init__(self, field: str, message: str, *, others: tuple[str, ...] = ()) -> None:
        super().__init__(f"Failed to use HID POS layout: {field}: {message}")
        self.field = field
        """The :class:`HidPosLayout` field (and profile ``[hidpos]`` key) at fault."""
        self.message = message
        """What is wrong, without the field name."""
        self.others = others
        """Other fields that take part (the other side of an overlap), most likely first."""


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
        problem = self._problem()
        if problem is not None:
            field, message, others = problem
            raise LayoutError(field, message, others=others)

    def _problem(self) -> tuple[str, str, tuple[str, ...]] | None:
        """The first field at fault and why, or ``None`` for a usable layout."""
        size = self.report_size
        if not 1 <= size <= MAX_REPORT_SIZE:
            return "report_size", f"expected 1..{MAX_REPORT_SIZE} bytes, got {size}", ()
        if self.report_id is not None and not 1 <= self.report_id <= 0xFF:
            return "report_id", f"expected 1..255 (or no report ID), got {self.report_id}", ()
        if not 0 < self.continuation_mask <= 0xFF:
            return (
                "continuation_mask",
                f"expected one byte's bits (1..255), got {self.continuation_mask}",
                (),
            )
        if self.data_size < 1:
            return "data_size", f"expected at least 1 byte, got {self.data_size}", ()
        # (key, what, first byte, bytes): every field must lie inside the report and
        # no two may share a byte (byte 0 is the report ID of numbered reports).
        spans: list[tuple[str, str, int, int]] = []
        if self.report_id is not None:
            spans.append(("report_id", "the report ID", 0, 1))
        if self.length_offset is not None:
            spans.append(("length_offset", "the length byte", self.length_offset, 1))
        if self.aim_offset is not None:
            spans.append(("aim_offset", "the AIM identifier", self.aim_offset, AIM_SIZE))
        spans.append(("data_offset", "the data", self.data_offset, self.data_size))
        spans.append(("continuation_offset", "the continuation flag", self.continuation_offset, 1))
        for key, what, first, count in spans:
            last = first + count - 1
            if first < 0:
                return key, f"expected an offset of 0 or more, got {first}", ()
            if first >= size:
                return (
                    key,
                    f"byte {first} is outside the {size}-byte report (bytes 0..{size - 1})",
                    ("report_size",),
                )
            if last >= size:
                where, others = (
                    ("data_size", ("data_offset",)) if key == "data_offset" else (key, ())
                )
                return (
                    where,
                    f"{what} (bytes {first}..{last}) ends past the report size ({size} bytes)",
                    (*others, "report_size"),
                )
        for index, (key, what, first, count) in enumerate(spans):
            for other, other_what, other_first, other_count in spans[:index]:
                if first < other_first + other_count and other_first < first + count:
                    sizes = tuple("data_size" for k in (key, other) if k == "data_offset")
                    return (
                        key,
                        f"{what} (bytes {first}..{first + count - 1}) overlaps {other_what} "
                        f"(bytes {other_first}..{other_first + other_count - 1})",
                        (other, *sizes),
                    )
        return None


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

FIELDS: Final = tuple(field.name for field in dataclasses.fields(HidPosLayout))
"""The layout's fields, which are also the ``[hidpos]`` keys of a firmware profile."""
OPTIONAL_FIELDS: Final = ("report_id", "length_offset", "aim_offset")
"""Fields that may be ``None`` (no report ID, no length byte, no AIM field)."""
REQUIRED_FIELDS: Final = tuple(f for f in FIELDS if f != "continuation_mask")
"""Fields a layout defined without a base must give (``continuation_mask`` defaults to 0x01)."""


def resolve_layout(base: HidPosLayout | None, fields: Mapping[str, int | None]) -> HidPosLayout:
    """``base`` with ``fields`` replaced, or (no base) a layout made of ``fields`` alone.

    Raises:
        LayoutError: naming the field that is unknown, missing (without a base), out of
            range, outside the report or overlapping another field.
    """
    for key in fields:
        if key not in FIELDS:
            raise LayoutError(key, f"unknown field (expected one of {list(FIELDS)})")
    if base is not None:
        return dataclasses.replace(base, **fields)  # type: ignore[arg-type]
    for key in REQUIRED_FIELDS:
        if key not in fields:
            raise LayoutError(key, "missing (a layout without a base layout needs every field)")
    return HidPosLayout(**fields)  # type: ignore[arg-type]


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
