"""Discovery reads a fake sysfs tree, fails soft on odd nodes and matches profiles."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from drivers import discovery
from drivers.discovery import Discovery, FoundDevice, ProfileMatch, discover
from tests.drivers.fake_sysfs import (
    CONSUMER_KEYS,
    HID_POS_DESCRIPTOR,
    KEYBOARD_DESCRIPTOR,
    KEYBOARD_KEYS,
    FakeSysfs,
)

NEWLAND = 0x1EAB


@pytest.fixture
def sysfs(tmp_path: Path) -> FakeSysfs:
    fake = FakeSysfs(tmp_path / "sys")
    # A Newland HR22 in HID POS mode (its ids are in the newland-hr22 profile).
    pos = fake.usb_device(
        "1-1", NEWLAND, 0x1A10, serial="HR22-0001", manufacturer="Newland", product="HR22"
    )
    fake.hidraw(
        0,
        fake.interface(pos, 0, "usbhid"),
        vid=NEWLAND,
        pid=0x1A10,
        name="Newland HR22",
        descriptor=HID_POS_DESCRIPTOR,
    )
    # The same model in keyboard mode: a keyboard event node and a consumer-control node.
    kbd = fake.usb_device("1-2", NEWLAND, 0x1A03, serial="HR22-0002")
    kbd_if = fake.interface(kbd, 0, "usbhid")
    fake.hidraw(
        1, kbd_if, vid=NEWLAND, pid=0x1A03, name="Newland HR22 kbd", descriptor=KEYBOARD_DESCRIPTOR
    )
    fake.input_event(3, kbd_if, name="Newland HR22 Keyboard", keys=CONSUMER_KEYS)
    fake.input_event(2, kbd_if, name="Newland HR22 Keyboard", keys=KEYBOARD_KEYS)
    # A virtual input device: no USB parent, no key capabilities file.
    fake.input_event(0, None, name="Power Button", keys=None)
    # A camera.
    cam = fake.usb_device("1-3", 0x046D, 0x0825, product="Webcam C270")
    fake.video(0, fake.interface(cam, 0, "uvcvideo"), name="UVC Camera (046d:0825)")
    return fake


def ports() -> list[SimpleNamespace]:
    """What pyserial's comports() returns (ListPortInfo fields)."""
    return [
        SimpleNamespace(
            device="/dev/ttyACM0",
            description="Symbol Bar Code Scanner",
            vid=0x05E0,
            pid=0x1701,
            serial_number="S123",
            manufacturer="Symbol",
            product="Bar Code Scanner",
            location="1-4:1.0",
        ),
        SimpleNamespace(
            device="/dev/ttyS0",
            description="n/a",
            vid=None,
            pid=None,
            serial_number=None,
            manufacturer=None,
            product=None,
            location=None,
        ),
    ]


def test_discover_lists_each_kind_with_usb_identity_and_profile(sysfs: FakeSysfs) -> None:
    found = discover(sysfs.root, comports=ports, profile_dirs=())

    acm, ttys0 = found.serial
    assert acm.path == "/dev/ttyACM0"
    assert acm.usb_id == "05e0:1701"
    assert acm.profiles == (ProfileMatch("generic-serial", "cdc-acm"),)
    assert ttys0 == FoundDevice(kind="serial", path="/dev/ttyS0")

    pos, kbd_raw = found.hid
    assert pos == FoundDevice(
        kind="hid",
        path="/dev/hidraw0",
        name="Newland HR22",
        vid=NEWLAND,
        pid=0x1A10,
        serial_number="HR22-0001",
        manufacturer="Newland",
        product="HR22",
        location="1-1",
        driver="hid-generic",
        hid_pos=True,
        profiles=(ProfileMatch("newland-hr22", "hid-pos"),),
    )
    assert kbd_raw.hid_pos is False
    assert kbd_raw.profiles == (ProfileMatch("newland-hr22", "keyboard"),)

    power, kbd, consumer = found.input
    assert power == FoundDevice(
        kind="input", path="/dev/input/event0", name="Power Button", vid=0, pid=0
    )
    assert kbd.path == "/dev/input/event2"
    assert kbd.keyboard is True
    assert kbd.serial_number == "HR22-0002"
    assert kbd.driver == "usbhid"
    assert kbd.location == "1-2"
    assert consumer.keyboard is False

    (camera,) = found.cameras
    assert camera.name == "UVC Camera (046d:0825)"
    assert camera.usb_id == "046d:0825"
    assert camera.driver == "uvcvideo"
    assert camera.profiles == ()


def test_unreadable_or_missing_attributes_leave_blanks_not_errors(sysfs: FakeSysfs) -> None:
    usb = sysfs.usb / "1-1"
    (usb / "idVendor").write_text("not hex\n")
    (usb / "serial").unlink()
    report = next(usb.rglob("report_descriptor"))
    (report.parent / "uevent").write_text("garbage without equals sign\n")
    report.unlink()
    report.mkdir()  # reading a directory fails: soft
    (sysfs.root / "class" / "hidraw" / "hidraw9").symlink_to(sysfs.root / "nowhere")

    found = discover(sysfs.root, comports=list, profile_dirs=())
    pos = found.hid[0]
    assert pos.vid is None
    assert pos.pid == 0x1A10
    assert pos.name is None
    assert pos.serial_number is None
    assert pos.hid_pos is None
    assert pos.profiles == ()
    assert found.hid[-1] == FoundDevice(kind="hid", path="/dev/hidraw9")


def test_an_empty_or_missing_sysfs_finds_nothing(tmp_path: Path) -> None:
    assert discover(tmp_path / "absent", comports=list) == Discovery()


def test_discovery_is_json_ready(sysfs: FakeSysfs) -> None:
    data = json.loads(json.dumps(discover(sysfs.root, comports=ports).to_dict()))
    assert set(data) == {"serial", "hid", "input", "cameras"}
    assert data["hid"][0]["usb_id"] == "1eab:1a10"
    assert data["hid"][0]["profiles"] == [{"profile": "newland-hr22", "mode": "hid-pos"}]


def test_select_filters_by_ids_serial_and_predicate(sysfs: FakeSysfs) -> None:
    found = discover(sysfs.root, comports=list).all()
    pick = discovery.select(found, ids=[(NEWLAND, 0x1A03)], predicate=lambda d: d.kind == "input")
    assert pick is not None
    assert pick.path == "/dev/input/event2"
    assert discovery.select(found, ids=[(NEWLAND, 0x1A10)], usb_serial="other") is None
    pick = discovery.select(found, usb_serial="HR22-0001")
    assert pick is not None
    assert pick.path == "/dev/hidraw0"


@pytest.mark.parametrize(
    ("descriptor", "pages"),
    [
        (HID_POS_DESCRIPTOR, {0x8C}),
        (KEYBOARD_DESCRIPTOR, {0x01, 0x07}),
        (bytes.fromhex("06 8c 00 09 02"), {0x8C}),  # two-byte Usage Page
        (bytes.fromhex("fe 02 10 aa bb 05 8c"), {0x8C}),  # a long item is skipped
        (b"", set()),
    ],
)
def test_hid_usage_pages_parse_short_and_long_items(descriptor: bytes, pages: set[int]) -> None:
    assert discovery.hid_usage_pages(descriptor) == pages


def test_key_bitmaps() -> None:
    assert discovery.has_keys(KEYBOARD_KEYS, (discovery.KEY_A, discovery.KEY_ENTER))
    assert not discovery.has_keys(CONSUMER_KEYS, (discovery.KEY_A,))
    assert not discovery.has_keys("", (discovery.KEY_A,))
    assert not discovery.has_keys("zz", (discovery.KEY_A,))
