"""A fake Linux sysfs tree, laid out as the kernel does, for discovery tests.

Class entries (``class/hidraw/hidraw0``) are symlinks into ``devices/``; each
has a ``device`` link to its parent device, and the USB device directory
(``1-1``, with ``idVendor``, ``idProduct``, ``serial``...) sits above the
interface (``1-1:1.0``), exactly the walk :mod:`drivers.discovery` does.
"""

from __future__ import annotations

import os
from pathlib import Path

# A keyboard's capabilities/key bitmap (from a real USB keyboard, last word
# holds KEY_ESC..KEY_? incl. KEY_ENTER=28 and KEY_A=30).
KEYBOARD_KEYS = "1000000000007 ff9f207ac14057ff febeffdfffefffff fffffffffffffffe"
# A consumer-control node of the same scanner: no letter keys.
CONSUMER_KEYS = "3 0 0 0"
HID_POS_DESCRIPTOR = bytes.fromhex(
    "05 8c 09 02 a1 01 85 02 09 fe 15 00 26 ff 00 75 08 95 38 81 02 c0"
)
KEYBOARD_DESCRIPTOR = bytes.fromhex("05 01 09 06 a1 01 05 07 19 e0 29 e7 c0")


def _write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text + "\n")


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent))


class FakeSysfs:
    """Builds a sysfs tree under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.usb = root / "devices" / "pci0000:00" / "0000:00:14.0" / "usb1"
        self.usb.mkdir(parents=True)
        self._hid = 0

    def driver(self, name: str) -> Path:
        path = self.root / "bus" / "drivers" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def usb_device(
        self,
        port: str,
        vid: int,
        pid: int,
        *,
        serial: str | None = None,
        manufacturer: str | None = None,
        product: str | None = None,
    ) -> Path:
        path = self.usb / port
        _write(path / "idVendor", f"{vid:04x}")
        _write(path / "idProduct", f"{pid:04x}")
        for name, value in (
            ("serial", serial),
            ("manufacturer", manufacturer),
            ("product", product),
        ):
            if value is not None:
                _write(path / name, value)
        return path

    def interface(self, usb: Path, number: int, driver: str) -> Path:
        path = usb / f"{usb.name}:1.{number}"
        path.mkdir(parents=True, exist_ok=True)
        _link(path / "driver", self.driver(driver))
        return path

    def hidraw(
        self,
        index: int,
        interface: Path,
        *,
        vid: int,
        pid: int,
        name: str,
        descriptor: bytes | None,
        uniq: str = "",
    ) -> None:
        self._hid += 1
        hid = interface / f"0003:{vid:04X}:{pid:04X}.{self._hid:04X}"
        _write(
            hid / "uevent",
            f"DRIVER=hid-generic\nHID_ID=0003:{vid:08X}:{pid:08X}\nHID_NAME={name}\nHID_UNIQ={uniq}",
        )
        if descriptor is not None:
            _write(hid / "report_descriptor", descriptor)
        _link(hid / "driver", self.driver("hid-generic"))
        node = hid / "hidraw" / f"hidraw{index}"
        node.mkdir(parents=True)
        _link(node / "device", hid)
        _link(self.root / "class" / "hidraw" / f"hidraw{index}", node)

    def input_event(
        self,
        index: int,
        interface: Path | None,
        *,
        name: str,
        keys: str | None,
        vid: int = 0,
        pid: int = 0,
    ) -> None:
        parent = interface if interface is not None else self.root / "devices" / "virtual"
        device = parent / "input" / f"input{index + 10}"
        _write(device / "name", name)
        _write(device / "id" / "vendor", f"{vid:04x}")
        _write(device / "id" / "product", f"{pid:04x}")
        if keys is not None:
            _write(device / "capabilities" / "key", keys)
        if interface is not None:
            _link(device / "device", interface)
        node = device / f"event{index}"
        node.mkdir(parents=True)
        _link(node / "device", device)
        _link(self.root / "class" / "input" / f"event{index}", node)

    def video(self, index: int, interface: Path, *, name: str) -> None:
        node = interface / "video4linux" / f"video{index}"
        _write(node / "name", name)
        _link(node / "device", interface)
        _link(self.root / "class" / "video4linux" / f"video{index}", node)
