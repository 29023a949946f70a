"""HID POS scanners through Linux hidraw: ``os.read`` on ``/dev/hidrawN``, no extra library.

The kernel's ``usbhid`` driver owns the USB interface and hands every input
report to ``/dev/hidrawN`` (one report per ``read``), so nothing is claimed
and no pyusb is needed.  :class:`HidPosSource` opens the node read-only,
takes an advisory ``flock`` (one reader per device), cuts the bytes into
reports (:class:`ReportSplitter`, which also copes with a pipe or a pty
standing in for the node, where reads may split or join reports) and joins
the reports of each bar code with :class:`drivers.hidpos.HidPosAssembler`
using the profile's resolved report layout (``Profile.hidpos_report_layout``:
the named ``[hidpos] layout`` with the profile's field overrides, or a layout
the profile defines in full).

Without hidraw (no ``/sys/class/hidraw``; or ``backend = "pyusb"``), the
reports are read straight from the USB interrupt endpoint through pyusb
(:mod:`drivers.usbhid`), with the same splitter and layout.

Which node: the ``device`` key, else the first hidraw node whose USB ids are
the profile's ``hid-pos`` ids (and whose USB serial number is ``usb_serial``,
when given); a profile without ids (``generic-hidpos``) takes the first node
whose report descriptor declares the HID POS bar code scanner usage page.
The search runs again at every reconnect, so a scanner that comes back on
another ``hidrawN`` is found.

Feedback: when the profile's ``[hidpos]`` table has ``good_read``,
``bad_read`` or ``duplicate_read`` output reports, the node is opened
read-write and the report for the committed outcome is written to it
(``write(2)`` on hidraw sends one output report, report ID first);
``duplicate_read`` falls back to ``bad_read``.  Without them nothing goes back
to the scanner (the HID POS usage table's beeper and LED output usages sit at
positions no public report descriptor here confirms) and the outcome reaches
the operator through the TUI (``last_outcome``, the event stream and its
terminal bell).

Status attributes: see :mod:`drivers.device` (``connected``, ``device``,
``model``, ``last_scan_at``, ``errors``, ``last_outcome``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers import discovery, hotplug, usbhid
from drivers.device import DeviceSource
from drivers.framing import DEFAULT_MAX_FRAME, Frame
from drivers.hidpos import HidPosAssembler, HidPosLayout
from drivers.profiles import HidPosFeedback, Profile
from drivers.reader import FdReader, device_errors, open_device_fd
from drivers.source_profiles import describe, load_source_profile, usb_ids
from scanner_agent.kernel import ConfigError, DeviceUnavailable, ScanOutcome, Verdict

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

    def write(self, report: bytes) -> None:
        """Send one output report (blocking; call it from a worker thread).

        Raises:
            DeviceError: the node refused it (gone, or no such output report).
        """
        with device_errors(self.path, "write to"):
            os.write(self.fd, report)

    def close(self) -> None:
        """Close the node."""
        self._reader.close()
        os.close(self.fd)


class UsbLink:
    """A claimed USB HID interface (:mod:`drivers.usbhid`) as a :class:`drivers.device.Link`."""

    def __init__(self, reports: usbhid.UsbReports) -> None:
        self.reports = reports
        self.path = reports.name

    def read(self) -> bytes:
        """One report, or b"" after the short read time-out (so a stop is prompt)."""
        return self.reports.read()

    def cancel(self) -> None:
        """Nothing to wake: reads end within :data:`drivers.usbhid.READ_TIMEOUT_MS`."""

    def close(self) -> None:
        """Release the interface (and give it back to the kernel driver)."""
        self.reports.close()


UsbOpener = Callable[[list[tuple[int, int]], str], usbhid.UsbReports]


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
        backend: str = "auto",
        usb_opener: UsbOpener | None = None,
    ) -> None:
        layout = report_layout(profile)
        super().__init__(
            name,
            device or f"usb:{profile.id}",
            model=describe(profile),
            reconnect_initial_s=reconnect_initial_s,
            reconnect_max_s=reconnect_max_s,
        )
        self.profile = profile
        self.layout = layout
        """The resolved input report layout (profile data)."""
        self.configured_device = device
        """The ``device`` key; empty when the node is found by USB ids."""
        self.usb_serial = usb_serial
        self.max_frame = max_frame or profile.framing.max_frame or DEFAULT_MAX_FRAME
        self.aim_prefix = profile.framing.aim_prefix is not False
        self.sysfs = Path(sysfs)
        self.dev = Path(dev)
        self.feedback = profile.hidpos_feedback
        """Output reports sent after the commit (none: the TUI carries the outcome)."""
        self.can_write = True
        """False once the node turned out to be read-only for the agent (or with pyusb)."""
        self.requested_backend = backend
        """``auto``, ``hidraw`` or ``pyusb`` (the source's ``backend`` key)."""
        self.backend: str | None = None
        """The backend in use, chosen when the source starts."""
        self._needs_pyusb = usb_opener is None
        self._usb_opener: UsbOpener = usb_opener or (
            lambda ids, serial: usbhid.PyUsbHid.open(ids, serial)
        )
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

    def _prepare(self) -> None:
        """Pick hidraw or pyusb once; refuse what can never work."""
        self.backend = usbhid.choose_backend(
            self.requested_backend,
            device=self.configured_device,
            hidraw_present=(self.sysfs / "class" / "hidraw").is_dir(),
            pyusb_present=self.requested_backend == "auto" and usbhid.pyusb_available(),
        )
        if self.backend != "pyusb":
            return
        if not usb_ids(self.profile, "hid-pos"):
            raise ConfigError(
                f"{self.name}: the pyusb backend finds the scanner by the profile's hid-pos "
                f"USB ids, and profile {self.profile.id!r} has none"
            )
        if self._needs_pyusb and not usbhid.pyusb_available():
            raise ConfigError(
                f'{self.name}: backend = "pyusb" needs pyusb: '
                "pip install 'scanner-agent[usb]' (and the libusb-1.0-0 package)"
            )
        self.can_write = False  # output reports go through hidraw only
        log.info("%s: no hidraw on this host: reading USB through pyusb", self.name)

    def _interest(self) -> hotplug.Interest | None:
        if self.backend == "pyusb":
            return None  # USB device events are not monitored: polling
        return hotplug.Interest(
            ("hidraw",), frozenset(usb_ids(self.profile, "hid-pos")), self.usb_serial
        )

    def _open(self) -> HidrawLink | UsbLink:
        if self.backend == "pyusb":
            name = f"usb:{self.profile.id}"
            with device_errors(name, "open", DeviceUnavailable):
                reports = self._usb_opener(usb_ids(self.profile, "hid-pos"), self.usb_serial)
            self.device = reports.name
            return UsbLink(reports)
        path = self.configured_device or self.find()
        if path is None:
            raise DeviceUnavailable(
                f"Failed to find a HID POS scanner for profile {self.profile.id!r}"
                + (f" with USB serial {self.usb_serial!r}" if self.usb_serial else ""),
                device=self.device,
            )
        fd = self._open_fd(path)
        self.device = path
        return HidrawLink(fd, path)

    def _open_fd(self, path: str) -> int:
        """Read-write when there are output reports to send; read-only when only that is allowed.

        A node the agent may read but not write (an older udev rule with mode
        0640) still delivers scans: feedback is then switched off, with a warning.
        """
        if not self.feedback.any or not self.can_write:
            return open_device_fd(path)
        try:
            return open_device_fd(path, writable=True)
        except DeviceUnavailable as exc:
            if not isinstance(exc.__cause__, PermissionError):
                raise
        fd = open_device_fd(path)
        self.can_write = False
        log.warning(
            "%s: %s is not writable: no beep after the commit (give the agent's group "
            'write access, udev MODE="0660"); the TUI still shows every outcome',
            self.name,
            path,
        )
        return fd

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

    async def _feedback(self, link: Any, outcome: ScanOutcome) -> None:
        report = feedback_report(self.feedback, outcome) if self.can_write else None
        if report is None:
            log.debug("%s: no output report for %s", self.name, outcome.verdict.value)
            return
        await self._write_link(link.write, report)


def report_layout(profile: Profile) -> HidPosLayout:
    """The profile's resolved input report layout.

    Raises:
        ValueError: the profile has no ``[hidpos]`` table.
    """
    if profile.hidpos_report_layout is None:
        raise ValueError(
            f"Failed to use profile {profile.id!r} for HID POS: it has no [hidpos] layout"
        )
    return profile.hidpos_report_layout


def new_assembler(profile: Profile, max_frame: int | None = None) -> HidPosAssembler:
    """A report assembler for ``profile``: its resolved layout, ``[framing]`` ``max_frame``
    (unless ``max_frame`` is given) and ``aim_prefix`` (on unless ``false``).

    Raises:
        ValueError: the profile has no ``[hidpos]`` table, or ``max_frame`` is not positive.
    """
    return HidPosAssembler(
        report_layout(profile),
        max_frame=max_frame or profile.framing.max_frame or DEFAULT_MAX_FRAME,
        aim_prefix=profile.framing.aim_prefix is not False,
    )


def feedback_report(feedback: HidPosFeedback, outcome: ScanOutcome) -> bytes | None:
    """The output report for one committed outcome, or ``None`` (pure)."""
    if outcome.verdict is Verdict.ACCEPTED:
        return feedback.good_read
    if outcome.verdict is Verdict.DUPLICATE:
        return feedback.duplicate_read or feedback.bad_read
    return feedback.bad_read


def build(name: str, options: dict[str, Any]) -> HidPosSource:
    """Factory used by :mod:`drivers.registry`."""
    profile = load_source_profile(options["profile"], "source")
    return HidPosSource(
        name or f"hidpos:{options['device'] or options['usb_serial'] or profile.id}",
        options["device"],
        profile=profile,
        usb_serial=options["usb_serial"],
        reconnect_max_s=options["reconnect_max_s"],
        backend=options["backend"],
    )
