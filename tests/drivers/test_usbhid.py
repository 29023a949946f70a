"""The pyusb backend: backend choice, the source on recorded reports, the thin pyusb layer."""

from __future__ import annotations

import errno
import threading
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest

from drivers import usbhid
from drivers.hidraw import HidPosSource
from drivers.profiles import load_profile
from drivers.usbhid import PyUsbHid, choose_backend
from scanner_agent.kernel import ConfigError
from tests.support.drivers import AgentRun, cn20
from tests.support.hidpos import newland_report
from tests.support.polling import eventually

RunSource = Callable[[HidPosSource], Awaitable[AgentRun]]
GS1 = b"010690123456789217280500" + b"10LOT-2024-0001-ABCDEF\x1d" + b"21SERIAL0123456789ABCD"


def test_auto_keeps_hidraw_wherever_the_kernel_has_it() -> None:
    def pick(requested: str, **kw: Any) -> str:
        args = {"device": "", "hidraw_present": False, "pyusb_present": True, **kw}
        return choose_backend(requested, **args)

    assert pick("auto") == "pyusb"
    assert pick("auto", hidraw_present=True) == "hidraw"
    assert pick("auto", device="/dev/hidraw2") == "hidraw"
    assert pick("auto", pyusb_present=False) == "hidraw"  # fails later with "not found"
    assert pick("pyusb", hidraw_present=True) == "pyusb"
    assert pick("hidraw", pyusb_present=True) == "hidraw"
    with pytest.raises(ValueError, match="libusb"):
        pick("libusb")


class RecordedUsb:
    """A claimed interface replaying recorded reports; ``unplug`` makes reads fail."""

    def __init__(self, reports: list[bytes]) -> None:
        self.name = "usb:1eab:1a10"
        self.reports = list(reports)
        self.closed = False
        self.gone = threading.Event()

    def read(self) -> bytes:
        if self.gone.is_set():
            raise OSError(errno.ENODEV, "No such device")
        if self.reports:
            return self.reports.pop(0)
        self.gone.wait(0.01)
        return b""

    def close(self) -> None:
        self.closed = True


async def test_recorded_reports_through_pyusb_are_committed_and_a_replug_is_read_again(
    run_source: RunSource, tmp_path: Any
) -> None:
    plugs = [
        RecordedUsb([newland_report(cn20(1).encode()), newland_report(GS1[:56], more=True)]),
        RecordedUsb([newland_report(GS1[56:]), newland_report(cn20(2).encode())]),
    ]
    opened: list[tuple[list[tuple[int, int]], str]] = []

    def opener(ids: list[tuple[int, int]], serial: str) -> RecordedUsb:
        opened.append((ids, serial))
        if len(opened) > len(plugs):
            raise OSError(errno.ENODEV, "unplugged")
        return plugs[len(opened) - 1]

    source = HidPosSource(
        "hidpos:usb",
        profile=load_profile("newland-hr22"),
        usb_serial="20240117001",
        sysfs=tmp_path,  # no class/hidraw here: auto picks pyusb
        backend="pyusb",
        usb_opener=opener,
        reconnect_initial_s=0.01,
        reconnect_max_s=0.05,
    )
    agent = await run_source(source)
    await eventually(lambda: source.scans == 1)
    assert source.backend == "pyusb"
    assert source.device == "usb:1eab:1a10"
    assert opened[0] == ([(0x1EAB, 0x1A10)], "20240117001")
    plugs[0].gone.set()  # unplugged with half a bar code read: that half is dropped
    await eventually(lambda: source.connects == 2)
    # After the replug the tail arrives alone: a scan of its own (rejected), then cn20(2).
    await eventually(lambda: source.scans == 3)
    assert plugs[0].closed
    codes = await agent.stop()
    assert codes == [cn20(1), cn20(2)]
    assert not source.can_write  # output reports go through hidraw only


def test_pyusb_needs_the_profiles_usb_ids(tmp_path: Any) -> None:
    source = HidPosSource(
        "hidpos:usb", profile=load_profile("generic-hidpos"), sysfs=tmp_path, backend="pyusb"
    )
    with pytest.raises(ConfigError, match="no"):
        source._prepare()


def test_auto_without_hidraw_and_without_pyusb_stays_on_hidraw(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usbhid, "pyusb_available", lambda: False)
    source = HidPosSource("s", profile=load_profile("newland-hr22"), sysfs=tmp_path)
    source._prepare()
    assert source.backend == "hidraw"
    (tmp_path / "class" / "hidraw").mkdir(parents=True)
    monkeypatch.setattr(usbhid, "pyusb_available", lambda: True)
    source._prepare()
    assert source.backend == "hidraw"


# -- the thin pyusb layer against a stand-in of the usb package ----------------------------


class USBError(OSError):
    pass


class USBTimeoutError(USBError):
    pass


class FakeEndpoint:
    bEndpointAddress = 0x81
    bmAttributes = 0x03
    wMaxPacketSize = 64

    def __init__(self, reads: list[Any]) -> None:
        self.reads = reads

    def read(self, size: int, timeout: int) -> Any:
        item = self.reads.pop(0)
        if isinstance(item, Exception):
            raise item
        return list(item)


class FakeDevice:
    def __init__(self, vid: int, pid: int, endpoint: FakeEndpoint, serial: str = "S1") -> None:
        self.idVendor, self.idProduct, self.iSerialNumber = vid, pid, 3
        self.serial = serial
        self.endpoint = endpoint
        self.calls: list[str] = []
        self.kernel = True

    def get_active_configuration(self) -> list[Any]:
        keyboard = SimpleNamespace(bInterfaceClass=0x08, bInterfaceNumber=0, endpoints=[])
        hid = SimpleNamespace(bInterfaceClass=0x03, bInterfaceNumber=1, endpoints=[self.endpoint])
        return [keyboard, hid]

    def is_kernel_driver_active(self, n: int) -> bool:
        return self.kernel

    def detach_kernel_driver(self, n: int) -> None:
        self.calls.append(f"detach {n}")

    def attach_kernel_driver(self, n: int) -> None:
        self.calls.append(f"attach {n}")


def fake_usb(devices: list[FakeDevice]) -> Any:
    def find_descriptor(interface: Any, custom_match: Callable[[Any], bool]) -> Any:
        return next((e for e in interface.endpoints if custom_match(e)), None)

    util = SimpleNamespace(
        ENDPOINT_IN=0x80,
        ENDPOINT_TYPE_INTR=0x03,
        endpoint_direction=lambda a: a & 0x80,
        endpoint_type=lambda a: a & 0x03,
        find_descriptor=find_descriptor,
        get_string=lambda d, i: d.serial,
        claim_interface=lambda d, n: d.calls.append(f"claim {n}"),
        release_interface=lambda d, n: d.calls.append(f"release {n}"),
        dispose_resources=lambda d: d.calls.append("dispose"),
    )
    core = SimpleNamespace(
        find=lambda find_all: devices, USBError=USBError, USBTimeoutError=USBTimeoutError
    )
    return SimpleNamespace(core=core, util=util)


def test_pyusb_layer_claims_the_hid_interface_reads_reports_and_gives_it_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(usbhid.importlib, "import_module", lambda name: None)
    report = newland_report(cn20(3).encode())
    endpoint = FakeEndpoint([report, USBTimeoutError("timeout"), USBError(19, "gone")])
    other = FakeDevice(0x1EAB, 0x1A10, FakeEndpoint([]), serial="OTHER")
    mine = FakeDevice(0x1EAB, 0x1A10, endpoint)
    usb = fake_usb([FakeDevice(0x05E0, 0x1701, FakeEndpoint([])), other, mine])

    link = PyUsbHid.open([(0x1EAB, 0x1A10)], "S1", usb=usb)
    assert link.device is mine
    assert link.name == "usb:1eab:1a10"
    assert mine.calls == ["detach 1", "claim 1"]  # the HID interface, not the keyboard one
    assert link.read() == report
    assert link.read() == b""  # a read time-out is no error
    with pytest.raises(OSError, match="gone") as info:
        link.read()
    assert info.value.errno == 19
    link.close()
    assert mine.calls[2:] == ["release 1", "attach 1", "dispose"]
    with pytest.raises(OSError, match="no USB device"):
        PyUsbHid.open([(0x1EAB, 0x1A10)], "NOPE", usb=usb)
