"""Hot-plug: the wake decision on recorded udev events, the hub, the pyudev layer, a source."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from drivers import hotplug
from drivers.hotplug import Hotplug, Interest, UdevMonitor, device_event, wakes
from drivers.profiles import load_profile
from drivers.serialport import SerialSource
from tests.drivers.emulators import PlainScanner
from tests.support.drivers import AgentRun, cn20
from tests.support.polling import eventually

# Recorded with `udevadm monitor --udev --property` (trimmed to the keys used).
HIDRAW_ADD = {
    "ACTION": "add",
    "DEVPATH": "/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/0003:1EAB:1A10.0007/hidraw/hidraw3",
    "SUBSYSTEM": "hidraw",
    "DEVNAME": "/dev/hidraw3",
    "ID_VENDOR_ID": "1eab",
    "ID_MODEL_ID": "1a10",
    "ID_SERIAL_SHORT": "20240117001",
}
TTY_ADD = {
    "ACTION": "add",
    "SUBSYSTEM": "tty",
    "DEVNAME": "/dev/ttyACM0",
    "DEVLINKS": "/dev/serial/by-id/usb-Newland_HR22-if00 /dev/scanner/hr22",
    "ID_VENDOR_ID": "1eab",
    "ID_MODEL_ID": "1a06",
}
INPUT_ADD = {
    "ACTION": "add",
    "SUBSYSTEM": "input",
    "DEVNAME": "/dev/input/event7",
    "ID_VENDOR_ID": "065a",
    "ID_MODEL_ID": "0001",
}
PTY_ADD = {"ACTION": "add", "SUBSYSTEM": "tty", "DEVNAME": "/dev/pts/9"}  # no USB ids


def test_an_add_of_the_sources_subsystem_and_ids_wakes_it() -> None:
    hr22 = Interest(("hidraw",), frozenset({(0x1EAB, 0x1A10)}))
    assert wakes(HIDRAW_ADD, hr22)
    assert wakes({**HIDRAW_ADD, "ACTION": "bind"}, hr22)
    assert not wakes({**HIDRAW_ADD, "ACTION": "remove"}, hr22)
    assert not wakes(TTY_ADD, hr22)  # same scanner, other mode: not this source's node
    assert not wakes({**HIDRAW_ADD, "ID_MODEL_ID": "1a03"}, hr22)
    assert wakes(INPUT_ADD, Interest(("input",), frozenset({(0x065A, 0x0001)})))


def test_usb_serial_narrows_and_missing_ids_do_not_exclude() -> None:
    mine = Interest(("hidraw",), frozenset({(0x1EAB, 0x1A10)}), "20240117001")
    assert wakes(HIDRAW_ADD, mine)
    assert not wakes(HIDRAW_ADD, Interest(("hidraw",), mine.ids, "OTHER"))
    serial = Interest(("tty",))
    assert wakes(TTY_ADD, serial)  # a serial source knows a path, not ids: any tty add
    assert wakes(PTY_ADD, serial)
    assert wakes(PTY_ADD, Interest(("tty",), frozenset({(1, 2)})))  # no ids in the event
    assert not wakes({**TTY_ADD, "ID_VENDOR_ID": "zz"}, Interest(("input",)))
    assert not wakes({}, serial)


async def test_the_hub_wakes_matching_waiters_and_times_out_the_others() -> None:
    hub = Hotplug()
    hid = asyncio.create_task(hub.wait(Interest(("hidraw",)), 5.0))
    tty = asyncio.create_task(hub.wait(Interest(("tty",)), 0.05))
    await asyncio.sleep(0)
    assert hub.dispatch(HIDRAW_ADD) == 1
    assert await hid is True
    assert await tty is False  # its timeout: the backoff delay, as polling would
    assert hub.dispatch(TTY_ADD) == 0  # nobody waits any more
    assert hub.events == 2


class FakeMonitor:
    """pyudev.Monitor's surface: a real pipe to select on, queued devices."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        self.filters: list[str] = []
        self.started = False
        self.queue: list[Any] = []

    def filter_by(self, subsystem: str) -> None:
        self.filters.append(subsystem)

    def start(self) -> None:
        self.started = True

    def fileno(self) -> int:
        return self.r

    def push(self, device: Any) -> None:
        self.queue.append(device)
        os.write(self.w, b"x")

    def poll(self, timeout: float = 0) -> Any:
        if not self.queue:
            return None
        os.read(self.r, 1)
        return self.queue.pop(0)


def fake_device(props: dict[str, str]) -> Any:
    return SimpleNamespace(
        properties={k: v for k, v in props.items() if k not in ("ACTION", "SUBSYSTEM")},
        action=props["ACTION"],
        subsystem=props["SUBSYSTEM"],
        device_node=props.get("DEVNAME"),
    )


async def test_the_pyudev_layer_filters_the_subsystems_and_feeds_the_hub() -> None:
    monitor = FakeMonitor()
    fake_pyudev = SimpleNamespace(
        Context=lambda: "ctx",
        Monitor=SimpleNamespace(from_netlink=lambda ctx: monitor if ctx == "ctx" else None),
    )
    hub = Hotplug()
    udev = UdevMonitor(hub, fake_pyudev)
    assert monitor.filters == ["tty", "hidraw", "input"]
    assert monitor.started
    udev.attach(asyncio.get_running_loop())
    try:
        waiting = asyncio.create_task(hub.wait(Interest(("hidraw",)), 5.0))
        await asyncio.sleep(0)
        monitor.push(fake_device(HIDRAW_ADD))
        assert await waiting is True
        assert device_event(fake_device(HIDRAW_ADD)) == HIDRAW_ADD
    finally:
        udev.close()
        os.close(monitor.r)
        os.close(monitor.w)


async def test_without_pyudev_the_source_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pyudev(name: str) -> Any:
        raise ImportError(name)

    monkeypatch.setattr(hotplug.importlib, "import_module", no_pyudev)
    loop = asyncio.get_running_loop()
    hotplug._shared.pop(loop, None)
    try:
        assert hotplug.for_loop(loop) is None
    finally:
        hotplug._shared.pop(loop, None)


async def test_a_udev_add_reopens_a_serial_source_long_before_its_backoff(
    tmp_path: Path, run_source: Callable[[SerialSource], Awaitable[AgentRun]]
) -> None:
    link = tmp_path / "scanner"
    source = SerialSource(
        "serial:hotplug",
        str(link),
        profile=load_profile("generic-serial"),
        reconnect_initial_s=30.0,  # polling alone would not retry within this test
        reconnect_max_s=30.0,
    )
    hub = Hotplug()
    source.hotplug = hub
    agent = await run_source(source)
    await eventually(lambda: source.reason is not None)  # absent at start: waiting 30 s
    await eventually(lambda: bool(hub._waiting))
    emu = PlainScanner(link)
    try:
        started = time.monotonic()
        assert emu.line is not None
        assert hub.dispatch({**PTY_ADD, "DEVNAME": emu.line.path}) == 1
        await eventually(lambda: source.connected, within=5.0)
        assert time.monotonic() - started < 5.0
        assert source.hotplug_wakes == 1
        emu.scan(cn20(90))
        await eventually(lambda: source.scans == 1)
    finally:
        emu.close()
    assert await agent.stop() == [cn20(90)]
