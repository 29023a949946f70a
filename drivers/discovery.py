"""Find scanners: serial ports, HID devices, input devices and cameras, as value objects.

:func:`discover` is the one entry point.  It returns a frozen
:class:`Discovery` of frozen :class:`FoundDevice` rows, each with its USB
identity (vendor and product id, serial number, bus location) and the
firmware profiles whose ``[[usb.ids]]`` list it.  Serial ports come from
pyserial's ``serial.tools.list_ports`` (injectable as ``comports``); HID
devices, input devices and cameras are read from Linux sysfs
(``/sys/class/hidraw``, ``/sys/class/input/event*``,
``/sys/class/video4linux``) under a root that tests point at a fake tree.

Like pyserial's ``SysFS.read_line``, every sysfs read fails soft to ``None``:
an odd node (a virtual device without USB parent, a file the kernel refuses
to read) leaves blanks in its row and never breaks the listing.

>>> is_hid_pos_descriptor(bytes.fromhex("05 8c 09 02 a1 01 c0"))
True
>>> is_hid_pos_descriptor(bytes.fromhex("05 01 09 06 a1 01 c0"))
False
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from drivers import profiles

SYSFS = Path("/sys")
"""The real sysfs root."""
DEV = Path("/dev")
"""Where device nodes live."""
KINDS = ("serial", "hid", "input", "camera")
"""The kinds of device listed, in output order."""
HID_POS_USAGE_PAGE = 0x8C
"""USB-IF HID POS usage page "Bar Code Scanner"."""
KEY_ENTER = 28
KEY_A = 30
_MAX_PARENTS = 12


@dataclass(frozen=True, slots=True)
class ProfileMatch:
    """A firmware profile that lists the device's USB ids, and in which USB mode."""

    profile: str
    """The profile id (file stem)."""
    mode: str
    """``cdc-acm``, ``hid-pos``, ``keyboard`` or ``ssi-cdc``."""


@dataclass(frozen=True, slots=True)
class FoundDevice:
    """One device node and what sysfs says about it (``None`` where it says nothing)."""

    kind: str
    """One of :data:`KINDS`."""
    path: str
    """The device node, e.g. ``/dev/hidraw0``."""
    name: str | None = None
    """The kernel's name for it (HID name, input name, camera name, port description)."""
    vid: int | None = None
    """USB vendor id."""
    pid: int | None = None
    """USB product id."""
    serial_number: str | None = None
    """USB serial number (``iSerial``), when the device has one."""
    manufacturer: str | None = None
    product: str | None = None
    location: str | None = None
    """USB bus path, e.g. ``1-1.2``: stable while the device stays in the same socket."""
    driver: str | None = None
    """Kernel driver bound to it (``cdc_acm``, ``hid-generic``, ``uvcvideo``...)."""
    hid_pos: bool | None = None
    """HID devices: the report descriptor declares the bar code scanner usage page."""
    keyboard: bool | None = None
    """Input devices: it has letter and Enter keys (a keyboard or a wedge scanner)."""
    profiles: tuple[ProfileMatch, ...] = ()
    """Profiles whose ``[[usb.ids]]`` list ``vid:pid``."""

    @property
    def usb_id(self) -> str | None:
        """``vvvv:pppp`` in hex, when both ids are known."""
        if self.vid is None or self.pid is None:
            return None
        return profiles.usb_id_text(self.vid, self.pid)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``usb_id`` included)."""
        return {**asdict(self), "usb_id": self.usb_id}


@dataclass(frozen=True, slots=True)
class Discovery:
    """Everything found, by kind, each sorted by path."""

    serial: tuple[FoundDevice, ...] = ()
    hid: tuple[FoundDevice, ...] = ()
    input: tuple[FoundDevice, ...] = ()
    cameras: tuple[FoundDevice, ...] = ()

    def all(self) -> tuple[FoundDevice, ...]:
        """Every device, serial ports first."""
        return self.serial + self.hid + self.input + self.cameras

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """A JSON-ready dict: one list per kind."""
        return {
            "serial": [d.to_dict() for d in self.serial],
            "hid": [d.to_dict() for d in self.hid],
            "input": [d.to_dict() for d in self.input],
            "cameras": [d.to_dict() for d in self.cameras],
        }


# -- sysfs reading, failing soft ----------------------------------------------------


def read_text(path: Path) -> str | None:
    """A sysfs attribute, stripped; ``None`` when absent, unreadable or empty."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except (OSError, ValueError):
        return None
    return text or None


def read_bytes(path: Path) -> bytes | None:
    """A binary sysfs attribute (a report descriptor); ``None`` when unreadable."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def read_hex(path: Path) -> int | None:
    """A hex sysfs attribute (``idVendor``); ``None`` when absent or not hex."""
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def _resolve(path: Path) -> Path | None:
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None


def _driver(device_dir: Path) -> str | None:
    target = _resolve(device_dir / "driver")
    return target.name if target is not None else None


def _uevent(device_dir: Path) -> dict[str, str]:
    text = read_text(device_dir / "uevent") or ""
    pairs = (line.partition("=") for line in text.splitlines())
    return {key: value for key, sep, value in pairs if sep}


def usb_parent(device_dir: Path, root: Path) -> Path | None:
    """The USB device directory (with ``idVendor``) at or above ``device_dir``, inside ``root``."""
    root = _resolve(root) or root
    current = device_dir
    for _ in range(_MAX_PARENTS):
        if current == root or root not in current.parents:
            return None
        if (current / "idVendor").is_file():
            return current
        current = current.parent
    return None


@dataclass(frozen=True, slots=True)
class _Usb:
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    manufacturer: str | None = None
    product: str | None = None
    location: str | None = None


def _usb_info(device_dir: Path | None, root: Path) -> _Usb:
    if device_dir is None:
        return _Usb()
    usb = usb_parent(device_dir, root)
    if usb is None:
        return _Usb()
    return _Usb(
        vid=read_hex(usb / "idVendor"),
        pid=read_hex(usb / "idProduct"),
        serial_number=read_text(usb / "serial"),
        manufacturer=read_text(usb / "manufacturer"),
        product=read_text(usb / "product"),
        location=usb.name,
    )


# -- report descriptors and key bitmaps ----------------------------------------------


def hid_usage_pages(descriptor: bytes) -> set[int]:
    """Usage pages named by a HID report descriptor's Usage Page items."""
    pages: set[int] = set()
    i = 0
    while i < len(descriptor):
        prefix = descriptor[i]
        if prefix == 0xFE:  # long item: size, tag, data
            if i + 1 >= len(descriptor):
                break
            i += 3 + descriptor[i + 1]
            continue
        size = (0, 1, 2, 4)[prefix & 0x03]
        if prefix & 0xFC == 0x04:  # global item, tag 0: Usage Page
            pages.add(int.from_bytes(descriptor[i + 1 : i + 1 + size], "little"))
        i += 1 + size
    return pages


def is_hid_pos_descriptor(descriptor: bytes) -> bool:
    """True when the descriptor uses the HID POS bar code scanner page (0x8C)."""
    return HID_POS_USAGE_PAGE in hid_usage_pages(descriptor)


def has_keys(bitmap: str, codes: Iterable[int]) -> bool:
    """Whether an input ``capabilities/key`` bitmap has every key code in ``codes``.

    The kernel prints ``unsigned long`` words, most significant first, without
    padding; codes below 32 sit in the last word whatever the word size, and
    only those are supported here.
    """
    words = bitmap.split()
    if not words:
        return False
    try:
        low = int(words[-1], 16)
    except ValueError:
        return False
    return all(code < 32 and low >> code & 1 for code in codes)


# -- the per-kind readers ----------------------------------------------------------------


def _matches(
    index: Mapping[tuple[int, int], tuple[ProfileMatch, ...]], vid: int | None, pid: int | None
) -> tuple[ProfileMatch, ...]:
    if vid is None or pid is None:
        return ()
    return index.get((vid, pid), ())


def _class_entries(root: Path, cls: str, prefix: str = "") -> list[Path]:
    try:
        entries = [p for p in (root / "class" / cls).iterdir() if p.name.startswith(prefix)]
    except OSError:
        return []
    return sorted(entries, key=lambda p: _natural(p.name))


def _natural(name: str) -> tuple[str, int]:
    stem = name.rstrip("0123456789")
    digits = name[len(stem) :]
    return stem, int(digits) if digits else -1


def _hidraw(
    root: Path, dev: Path, index: Mapping[tuple[int, int], tuple[ProfileMatch, ...]]
) -> tuple[FoundDevice, ...]:
    found = []
    for entry in _class_entries(root, "hidraw", "hidraw"):
        device_dir = _resolve(entry / "device")
        uevent = _uevent(device_dir) if device_dir else {}
        usb = _usb_info(device_dir, root)
        vid, pid = usb.vid, usb.pid
        if vid is None and "HID_ID" in uevent:
            vid, pid = _hid_id(uevent["HID_ID"])
        descriptor = read_bytes(device_dir / "report_descriptor") if device_dir else None
        found.append(
            FoundDevice(
                kind="hid",
                path=str(dev / entry.name),
                name=uevent.get("HID_NAME"),
                vid=vid,
                pid=pid,
                serial_number=usb.serial_number or uevent.get("HID_UNIQ") or None,
                manufacturer=usb.manufacturer,
                product=usb.product,
                location=usb.location,
                driver=_driver(device_dir) if device_dir else None,
                hid_pos=is_hid_pos_descriptor(descriptor) if descriptor is not None else None,
                profiles=_matches(index, vid, pid),
            )
        )
    return tuple(found)


def _hid_id(value: str) -> tuple[int | None, int | None]:
    """``HID_ID=0003:00001EAB:00001A10`` -> (0x1EAB, 0x1A10)."""
    parts = value.split(":")
    try:
        return int(parts[1], 16), int(parts[2], 16)
    except (IndexError, ValueError):
        return None, None


def _input(
    root: Path, dev: Path, index: Mapping[tuple[int, int], tuple[ProfileMatch, ...]]
) -> tuple[FoundDevice, ...]:
    found = []
    for entry in _class_entries(root, "input", "event"):
        input_dir = _resolve(entry / "device")
        if input_dir is None:
            found.append(FoundDevice(kind="input", path=str(dev / "input" / entry.name)))
            continue
        usb = _usb_info(input_dir, root)
        vid = usb.vid if usb.vid is not None else read_hex(input_dir / "id" / "vendor")
        pid = usb.pid if usb.pid is not None else read_hex(input_dir / "id" / "product")
        keys = read_text(input_dir / "capabilities" / "key")
        found.append(
            FoundDevice(
                kind="input",
                path=str(dev / "input" / entry.name),
                name=read_text(input_dir / "name"),
                vid=vid,
                pid=pid,
                serial_number=usb.serial_number or read_text(input_dir / "uniq"),
                manufacturer=usb.manufacturer,
                product=usb.product,
                location=usb.location,
                driver=_driver(_resolve(input_dir / "device") or input_dir),
                keyboard=has_keys(keys, (KEY_A, KEY_ENTER)) if keys is not None else None,
                profiles=_matches(index, vid, pid),
            )
        )
    return tuple(found)


def _cameras(
    root: Path, dev: Path, index: Mapping[tuple[int, int], tuple[ProfileMatch, ...]]
) -> tuple[FoundDevice, ...]:
    found = []
    for entry in _class_entries(root, "video4linux", "video"):
        device_dir = _resolve(entry / "device")
        usb = _usb_info(device_dir, root)
        found.append(
            FoundDevice(
                kind="camera",
                path=str(dev / entry.name),
                name=read_text(entry / "name"),
                vid=usb.vid,
                pid=usb.pid,
                serial_number=usb.serial_number,
                manufacturer=usb.manufacturer,
                product=usb.product,
                location=usb.location,
                driver=_driver(device_dir) if device_dir else None,
                profiles=_matches(index, usb.vid, usb.pid),
            )
        )
    return tuple(found)


def _serial(
    comports: Callable[[], Iterable[Any]],
    index: Mapping[tuple[int, int], tuple[ProfileMatch, ...]],
) -> tuple[FoundDevice, ...]:
    found = []
    try:
        ports = list(comports())
    except OSError:
        return ()
    for port in ports:
        vid = getattr(port, "vid", None)
        pid = getattr(port, "pid", None)
        description = getattr(port, "description", None)
        found.append(
            FoundDevice(
                kind="serial",
                path=str(port.device),
                name=description if description and description != "n/a" else None,
                vid=vid,
                pid=pid,
                serial_number=getattr(port, "serial_number", None),
                manufacturer=getattr(port, "manufacturer", None),
                product=getattr(port, "product", None),
                location=getattr(port, "location", None),
                profiles=_matches(index, vid, pid),
            )
        )
    return tuple(sorted(found, key=lambda d: _natural(Path(d.path).name)))


def _pyserial_comports() -> list[Any]:
    from serial.tools import list_ports

    return list(list_ports.comports())


def profile_index(
    extra_dirs: Iterable[Path | str] = (),
) -> dict[tuple[int, int], tuple[ProfileMatch, ...]]:
    """``(vid, pid)`` -> the profiles (and modes) listing it, from every valid profile."""
    index: dict[tuple[int, int], list[ProfileMatch]] = {}
    for profile in profiles.load_all(extra_dirs):
        for usb_id in profile.usb_ids:
            index.setdefault((usb_id.vid, usb_id.pid), []).append(
                ProfileMatch(profile.id, usb_id.mode)
            )
    return {key: tuple(value) for key, value in index.items()}


def discover(
    sysfs: Path | str = SYSFS,
    *,
    dev: Path | str = DEV,
    comports: Callable[[], Iterable[Any]] | None = None,
    profile_dirs: Iterable[Path | str] = (profiles.SITE_PROFILE_DIR,),
    kinds: Iterable[str] = KINDS,
    match_profiles: bool = True,
) -> Discovery:
    """List the devices of ``kinds`` found now (see the module docstring).

    ``comports`` replaces pyserial's ``list_ports.comports`` (tests); ``dev``
    is the directory the node paths are reported under; ``match_profiles =
    False`` skips loading the profiles (a driver searching by ids it knows).
    """
    root = Path(sysfs)
    dev_dir = Path(dev)
    wanted = set(kinds)
    index = profile_index(profile_dirs) if match_profiles else {}
    return Discovery(
        serial=_serial(comports or _pyserial_comports, index) if "serial" in wanted else (),
        hid=_hidraw(root, dev_dir, index) if "hid" in wanted else (),
        input=_input(root, dev_dir, index) if "input" in wanted else (),
        cameras=_cameras(root, dev_dir, index) if "camera" in wanted else (),
    )


def select(
    found: Iterable[FoundDevice],
    *,
    ids: Iterable[tuple[int, int]] = (),
    usb_serial: str = "",
    predicate: Callable[[FoundDevice], bool] | None = None,
) -> FoundDevice | None:
    """The first device listed by ``ids`` (any, when empty) that also passes
    ``predicate`` and, when given, has the USB serial number ``usb_serial``."""
    wanted = set(ids)
    for device in found:
        if wanted and (device.vid, device.pid) not in wanted:
            continue
        if usb_serial and device.serial_number != usb_serial:
            continue
        if predicate is not None and not predicate(device):
            continue
        return device
    return None
