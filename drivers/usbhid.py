"""HID POS input reports straight from USB through pyusb, for hosts without hidraw.

Linux hands a HID POS scanner's reports to ``/dev/hidrawN`` (:mod:`drivers.hidraw`)
whenever the kernel has hidraw and usbhid; this backend is for the hosts where
it does not (a kernel built without ``CONFIG_HIDRAW``, a container given the
USB bus but no hidraw nodes).  It claims the scanner's HID interface (detaching
the kernel driver, if one is bound, and re-attaching it on close) and reads its
interrupt IN endpoint: each transfer is one input report, report ID first for
numbered reports, exactly what hidraw would have delivered, so the same
:class:`~drivers.hidraw.ReportSplitter` and :class:`~drivers.hidpos.HidPosAssembler`,
built from the profile's resolved report layout
(:func:`drivers.hidraw.new_assembler`), apply.  Reads ask for one
``wMaxPacketSize`` at a time whatever the layout's ``report_size``: a report
longer than one packet arrives in pieces, which the splitter joins.

Everything USB is in :class:`PyUsbHid`, a thin class; the source above it only
sees :class:`UsbReports` (``read``/``close``) and is tested with recorded
reports.  pyusb (``pip install 'scanner-agent[usb]'``, plus libusb-1.0) is
imported only when this backend opens a device.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
from collections.abc import Collection
from typing import Any, Final, Protocol

HID_CLASS: Final = 0x03
"""bInterfaceClass of a HID interface."""
READ_TIMEOUT_MS: Final = 200
"""Longest one interrupt read blocks, so a stop is noticed within this."""
BACKENDS: Final = ("auto", "hidraw", "pyusb")
"""Values of a ``hidpos`` source's ``backend`` key."""


def choose_backend(
    requested: str, *, device: str, hidraw_present: bool, pyusb_present: bool
) -> str:
    """``hidraw`` or ``pyusb`` for a source (pure).

    ``auto`` keeps hidraw wherever the kernel offers it (nothing to claim, no
    extra library) and when a ``device`` path is given; pyusb only when there
    is no hidraw class and pyusb can be imported.
    """
    if requested not in BACKENDS:
        raise ValueError(f"expected one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested != "auto":
        return requested
    if device or hidraw_present or not pyusb_present:
        return "hidraw"
    return "pyusb"


def pyusb_available() -> bool:
    """True when ``import usb.core`` works."""
    try:
        importlib.import_module("usb.core")
    except ImportError:
        return False
    return True


class UsbReports(Protocol):
    """An open USB HID interface as the source reads it."""

    name: str

    def read(self) -> bytes:
        """One input report, or b"" when none came within the read time-out.

        Raises:
            OSError: the device went away or the transfer failed.
        """
        ...

    def close(self) -> None:
        """Release the interface."""
        ...


class PyUsbHid:
    """One claimed HID interface of a USB device, read through pyusb (the thin layer)."""

    def __init__(self, usb: Any, device: Any, interface: int, endpoint: Any, name: str) -> None:
        self._usb = usb
        self.device = device
        self.interface = interface
        self.endpoint = endpoint
        self.name = name
        self._detached = False

    @classmethod
    def open(
        cls, ids: Collection[tuple[int, int]], usb_serial: str = "", *, usb: Any = None
    ) -> PyUsbHid:
        """Find the first device with one of ``ids`` (and ``usb_serial``), claim its HID
        interface that has an interrupt IN endpoint.

        Raises:
            OSError: no such device (ENODEV), no HID interface, or the claim failed.
        """
        usb = usb or importlib.import_module("usb")
        importlib.import_module("usb.core")
        importlib.import_module("usb.util")
        for device in usb.core.find(find_all=True) or ():
            if (device.idVendor, device.idProduct) not in ids:
                continue
            if usb_serial and _serial(usb, device) != usb_serial:
                continue
            name = f"usb:{device.idVendor:04x}:{device.idProduct:04x}"
            number, endpoint = _hid_in_endpoint(usb, device)
            link = cls(usb, device, number, endpoint, name)
            link._claim()
            return link
        raise OSError(errno.ENODEV, "no USB device with the profile's hid-pos ids")

    def _claim(self) -> None:
        try:
            if self.device.is_kernel_driver_active(self.interface):
                self.device.detach_kernel_driver(self.interface)
                self._detached = True
            self._usb.util.claim_interface(self.device, self.interface)
        except self._usb.core.USBError as exc:
            self.close()
            raise _os_error(exc) from exc

    def read(self) -> bytes:
        """One input report (b"" on time-out)."""
        try:
            data = self.endpoint.read(self.endpoint.wMaxPacketSize, READ_TIMEOUT_MS)
        except self._usb.core.USBTimeoutError:
            return b""
        except self._usb.core.USBError as exc:
            raise _os_error(exc) from exc
        return bytes(data)

    def close(self) -> None:
        """Release the interface and give it back to the kernel driver."""
        with contextlib.suppress(Exception):
            self._usb.util.release_interface(self.device, self.interface)
        if self._detached:
            with contextlib.suppress(Exception):
                self.device.attach_kernel_driver(self.interface)
            self._detached = False
        with contextlib.suppress(Exception):
            self._usb.util.dispose_resources(self.device)


def _serial(usb: Any, device: Any) -> str:
    try:
        return str(usb.util.get_string(device, device.iSerialNumber) or "")
    except Exception:  # no permission to read strings, no serial: not ours to match
        return ""


def _hid_in_endpoint(usb: Any, device: Any) -> tuple[int, Any]:
    util = usb.util
    for interface in device.get_active_configuration():
        if interface.bInterfaceClass != HID_CLASS:
            continue
        endpoint = util.find_descriptor(
            interface,
            custom_match=lambda e: (
                util.endpoint_direction(e.bEndpointAddress) == util.ENDPOINT_IN
                and util.endpoint_type(e.bmAttributes) == util.ENDPOINT_TYPE_INTR
            ),
        )
        if endpoint is not None:
            return int(interface.bInterfaceNumber), endpoint
    raise OSError(errno.ENODEV, "the device has no HID interface with an interrupt IN endpoint")


def _os_error(exc: Any) -> OSError:
    code = getattr(exc, "errno", None) or errno.EIO
    return OSError(code, str(exc))
