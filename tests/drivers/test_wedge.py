"""The wedge driver turns key events from a (fake) evdev device into committed scans."""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from drivers import wedge_keys as k
from drivers.profiles import load_profile
from drivers.wedge import EV_KEY, WedgeSource
from scanner_agent.kernel import ConfigError, DeviceUnavailable, Verdict
from tests.drivers.emulators import FakeInputDevice
from tests.drivers.fake_sysfs import CONSUMER_KEYS, KEYBOARD_KEYS, FakeSysfs
from tests.support.drivers import AgentRun, cn20
from tests.support.polling import eventually

RunSource = Callable[[WedgeSource], Awaitable[AgentRun]]
EV_SYN = 0
DIGITS = {str(d): code for d, code in zip("1234567890", range(k.KEY_1, k.KEY_0 + 1), strict=True)}


def typed(text: str) -> list[tuple[int, int, int]]:
    """Key events a US-layout wedge scanner sends for ``text`` + Enter (with SYN reports)."""
    events: list[tuple[int, int, int]] = []
    for char in text:
        if char == "\x1d":  # GS as Ctrl+]
            keys = [(k.KEY_LEFTCTRL, 1), (k.KEY_RIGHTBRACE, 1), (k.KEY_RIGHTBRACE, 0)]
            keys.append((k.KEY_LEFTCTRL, 0))
        elif char == "]":
            keys = [(k.KEY_RIGHTBRACE, 1), (k.KEY_RIGHTBRACE, 0)]
        elif char.isdigit():
            keys = [(DIGITS[char], 1), (DIGITS[char], 0)]
        elif char == "d":
            keys = [(k.KEY_D, 1), (k.KEY_D, 0)]
        else:
            raise ValueError(char)
        for code, value in keys:
            events += [(EV_KEY, code, value), (EV_SYN, 0, 0)]
    return [*events, (EV_KEY, k.KEY_ENTER, 1), (EV_KEY, k.KEY_ENTER, 0), (EV_SYN, 0, 0)]


class Devices:
    """The opener: a new fake device per open, as a replugged scanner is a new node."""

    def __init__(self) -> None:
        self.opened: list[FakeInputDevice] = []
        self.present = True

    def __call__(self, path: str) -> FakeInputDevice:
        if not self.present:
            raise FileNotFoundError(2, "No such file or directory", path)
        device = FakeInputDevice(path)
        self.opened.append(device)
        return device

    @property
    def current(self) -> FakeInputDevice:
        return self.opened[-1]

    def close(self) -> None:
        for device in self.opened:
            device.close()


@pytest.fixture
def devices() -> Iterator[Devices]:
    d = Devices()
    yield d
    d.close()


def source_for(devices: Devices, **kwargs: object) -> WedgeSource:
    return WedgeSource(
        "wedge:test",
        "/dev/input/event7",
        profile=load_profile("generic-wedge"),
        opener=devices,
        reconnect_initial_s=0.01,
        reconnect_max_s=0.05,
        **kwargs,
    )


async def test_key_events_become_committed_scans_and_the_device_is_grabbed(
    devices: Devices, run_source: RunSource
) -> None:
    source = source_for(devices)
    agent = await run_source(source)
    await eventually(lambda: source.connected)
    device = devices.current
    assert device.grabbed

    device.push(typed(cn20(1)))
    gs1 = "]d2010690123456789217280500104711\x1d21123456"
    events = typed(gs1)
    device.push(events[:7])  # a scan may arrive over several reads
    device.push(events[7:])
    await eventually(lambda: source.scans == 2)
    device.push(typed(cn20(1)))  # again: duplicate
    await eventually(lambda: source.last_outcome is not None and source.scans == 3)
    await eventually(
        lambda: source.last_outcome is not None and source.last_outcome.verdict is Verdict.DUPLICATE
    )

    device.unplug()
    await eventually(lambda: not source.connected)
    assert device.closed
    await eventually(lambda: len(devices.opened) == 2 and source.connected)
    assert devices.current.grabbed
    devices.current.push(typed(cn20(2)))
    await eventually(lambda: source.scans == 4)

    assert await agent.stop() == [
        cn20(1),
        "(01)06901234567892(17)280500(10)4711(21)123456",
        cn20(2),
    ]
    assert source.errors == 1
    assert not devices.current.grabbed  # released when the source stopped


async def test_a_device_that_cannot_be_opened_is_retried(
    devices: Devices, run_source: RunSource
) -> None:
    devices.present = False
    source = source_for(devices, grab=False)
    agent = await run_source(source)
    await eventually(lambda: source.reason is not None)
    assert "event7" in source.reason
    devices.present = True
    await eventually(lambda: source.connected)
    assert not devices.current.grabbed
    devices.current.push(typed(cn20(3)))
    await eventually(lambda: source.scans == 1)
    assert await agent.stop() == [cn20(3)]


def test_the_event_node_is_found_by_usb_ids_skipping_non_keyboard_nodes(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path / "sys")
    usb = fake.usb_device("1-2", 0x1EAB, 0x1A03, serial="K1")
    interface = fake.interface(usb, 0, "usbhid")
    fake.input_event(4, interface, name="HR22 Consumer", keys=CONSUMER_KEYS)
    fake.input_event(5, interface, name="HR22 Keyboard", keys=KEYBOARD_KEYS)
    profile = load_profile("newland-hr22")
    source = WedgeSource("w", profile=profile, sysfs=fake.root, dev="/dev", opener=Devices())
    assert source.find() == "/dev/input/event5"
    other = WedgeSource("w", profile=profile, usb_serial="K2", sysfs=fake.root, opener=Devices())
    with pytest.raises(DeviceUnavailable, match="keyboard-wedge scanner"):
        other._open()


@pytest.mark.skipif(importlib.util.find_spec("evdev") is not None, reason="evdev is installed")
def test_without_python_evdev_the_source_fails_to_start_with_a_hint() -> None:
    source = WedgeSource("w", "/dev/input/event0", profile=load_profile("generic-wedge"))
    with pytest.raises(ConfigError, match=r"python-evdev is not installed .*: "):
        source._prepare()
