"""HID POS scanners through Linux hidraw: ``os.read`` on ``/dev/hidrawN``, no extra library.

The kernel's ``usbhid`` driver owns the USB interface and hands every input
report to ``/dev/hidrawN`` (one report per ``read``), so nothing is claimed
and no pyusb is needed.  :class:`HidPosSource` opens the node read-only,
takes an advisory ``flock`` (one reader per device), cuts the bytes into
reports (:class:`ReportSplitter`, which also copes with a pipe or a pty
standing in for the node, where reads may split or join reports) and joins
the reports of each bar code with :class:`drivers.hidpos.HidPosAssembler`
using the profile's ``[hidpos] layout``.

Which node: the ``device`` key, else the first hidraw node whose USB ids are
the profile's ``hid-pos`` ids (and whose USB serial number is ``usb_serial``,
when given); a profile without ids (``generic-hidpos``) takes the first node
whose report descriptor declares the HID POS bar code scanner usage page.
The search runs again at every reconnect, so a scanner that comes back on
another ``hidrawN`` is found.

Feedback: none goes back to the scanner (the HID POS output usages for the
beeper and LEDs sit at positions no layout here confirms); the outcome is
kept in ``last_outcome`` for the TUI and logged at debug level.

Status attributes: see :mod:`drivers.device` (``connected``, ``device``,
``model``, ``last_scan_at``, ``errors``, ``last_outcome``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from drivers import discovery
from drivers.device import (
    DeviceSource,
    FdReader,
    describe,
    load_source_profile,
    open_device_fd,
    usb_ids,
)
from drivers.framing import DEFAULT_MAX_FRAME, Frame
from drivers.hidpos import LAYOUTS, HidPosAssembler, HidPosLayout
from scanner_agent.config import SourceConfig
from scanner_agent.errors import DeviceUnavailable
from scanner_agent.profiles import Profile

log = logging.getLogger(__name__)


class ReportSplitter:
    """Cut a byte stream into input reports of one layout (pure).

    On ``/dev/hidrawN`` every read is one report and this passes it through.
    On a pipe or a pty, reads may hold part of a report or several: reports
    with the layout's report ID are cut at ``report_size`` (a partial one
    waits for the rest); anything else (another report ID) is passed on
    whole, for the assembler to count and ignore.
    """

    def __init__(self, layout: HidPosLayout) -> None:
        self.layout = layout
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes of a partial report (less than one report)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the complete reports."""
        self._buffer += data
        size = self.layout.report_size
        report_id = self.layout.report_id
        reports: list[bytes] = []
        buf = self._buffer
        while buf:
            if report_id is not None and buf[0] != report_id:
                reports.append(bytes(buf))
                buf.clear()
                break
            if len(buf) < size:
                break
            reports.append(bytes(buf[:size]))
            del buf[:size]
        return reports


class HidrawLink:
    """An open hidraw node (or stand-in) as a :class:`drivers.device.Link`."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path
        self._reader = FdReader(fd, path)

    def read(self) -> bytes:
        """One report (or, on a pipe or pty, whatever bytes are there)."""
        return self._reader.read()

    def cancel(self) -> None:
        """Wake a blocked read."""
        self._reader.cancel()

    def close(self) -> None:
        """Close the node."""
        self._reader.close()
        os.close(self.fd)


class HidPosSource(DeviceSource[bytes]):
    """Reads one HID POS scanner through hidraw (see the module docstring)."""

    def __init__(
        self,
        name: str,
        device: str = "",
        *,
        profile: Profile,
        usb_serial: str = "",
        max_frame: int | None = None,
        sysfs: Path | str = discovery.SYSFS,
        dev: Path | str = discovery.DEV,
        reconnect_initial_s: float = 0.05,
        reconnect_max_s: float = 5.0,
    ) -> None:
        if profile.hidpos_layout is None:
            raise ValueError(
                f"Failed to use profile {profile.id!r} for HID POS: it has no [hidpos] layout"
            )
        super().__init__(
            name,
            device or f"usb:{profile.id}",
            model=describe(profile),
            reconnect_initial_s=reconnect_initial_s,
            reconnect_max_s=reconnect_max_s,
        )
        self.profile = profile
        self.layout = LAYOUTS[profile.hidpos_layout]
        self.configured_device = device
        """The ``device`` key; empty when the node is found by USB ids."""
        self.usb_serial = usb_serial
        self.max_frame = max_frame or profile.framing.max_frame or DEFAULT_MAX_FRAME
        self.aim_prefix = profile.framing.aim_prefix is not False
        self.sysfs = Path(sysfs)
        self.dev = Path(dev)
        self._splitter: ReportSplitter | None = None
        self._assembler: HidPosAssembler | None = None

    def find(self) -> str | None:
        """The hidraw node of the profile's scanner, if one is plugged in."""
        ids = usb_ids(self.profile, "hid-pos")
        found = discovery.discover(
            self.sysfs, dev=self.dev, kinds=("hid",), match_profiles=False
        ).hid
        device = discovery.select(
            found,
            ids=ids,
            usb_serial=self.usb_serial,
            predicate=None if ids else (lambda d: d.hid_pos is True),
        )
        return device.path if device is not None else None

    def _open(self) -> HidrawLink:
        path = self.configured_device or self.find()
        if path is None:
            raise DeviceUnavailable(
                f"Failed to find a HID POS scanner for profile {self.profile.id!r}"
                + (f" with USB serial {self.usb_serial!r}" if self.usb_serial else ""),
                device=self.device,
            )
        fd = open_device_fd(path)
        self.device = path
        return HidrawLink(fd, path)

    async def _connected(self, link: Any) -> None:
        self._splitter = ReportSplitter(self.layout)
        self._assembler = HidPosAssembler(
            self.layout, max_frame=self.max_frame, aim_prefix=self.aim_prefix
        )

    async def _handle(self, link: Any, data: bytes) -> None:
        assert self._splitter is not None
        assert self._assembler is not None
        for report in self._splitter.feed(data):
            for event in self._assembler.feed(report):
                if isinstance(event, Frame):
                    await self._submit(event.data)
                else:
                    self._error("%s from %s", event.reason, self.device)


def build(src: SourceConfig, options: dict[str, Any]) -> HidPosSource:
    """Factory used by :mod:`drivers.registry`."""
    profile = load_source_profile(options["profile"], "source")
    return HidPosSource(
        src.name or f"hidpos:{options['device'] or options['usb_serial'] or profile.id}",
        options["device"],
        profile=profile,
        usb_serial=options["usb_serial"],
        reconnect_max_s=options["reconnect_max_s"],
    )
