"""Hot-plug: wake an offline source when udev announces a matching device.

Without this, an unplugged scanner is noticed again only at the next reopen
attempt of its source's backoff (up to ``reconnect_max_s``, 5 s by default).
With pyudev importable and the netlink socket open, a udev ``add`` event of the
right subsystem (and USB ids, when the source knows them) ends the wait at
once.  Polling stays underneath as the safety net: a missed or unmatched event
costs at most one backoff delay, never a lost scanner.

The decision (:func:`wakes`) is pure and works on plain dicts of udev
properties, so it is tested with recorded events; :class:`UdevMonitor` is the
thin pyudev layer (``pyudev.Monitor.from_netlink``, filtered to tty, hidraw
and input) feeding :class:`Hotplug`, which any event source can feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

log = logging.getLogger(__name__)

SUBSYSTEMS: Final = ("tty", "hidraw", "input")
"""The udev subsystems scanner nodes live in (serial, HID POS, keyboard wedge)."""
WAKING_ACTIONS: Final = frozenset({"add", "bind", "change"})
"""Actions after which a node may have become openable ("remove" never helps)."""


@dataclass(frozen=True, slots=True)
class Interest:
    """What one offline source waits for."""

    subsystems: tuple[str, ...]
    ids: frozenset[tuple[int, int]] = frozenset()
    """USB (vendor, product) ids; empty: any device of the subsystem."""
    usb_serial: str = ""
    """Only this USB serial number; empty: any."""


def _hex(value: object) -> int | None:
    try:
        return int(str(value), 16)
    except ValueError:
        return None


def wakes(event: Mapping[str, Any], interest: Interest) -> bool:
    """Whether a udev event (its properties, as ``udevadm monitor --property`` prints
    them) may have brought back the device ``interest`` waits for.

    A device without USB ids in the event (a built-in ``ttyS0``, a pty) matches
    any interest of its subsystem: opening once more is cheap, and missing the
    scanner is not.
    """
    if event.get("ACTION") not in WAKING_ACTIONS:
        return False
    if event.get("SUBSYSTEM") not in interest.subsystems:
        return False
    vid, pid = _hex(event.get("ID_VENDOR_ID", "")), _hex(event.get("ID_MODEL_ID", ""))
    if interest.ids and vid is not None and pid is not None and (vid, pid) not in interest.ids:
        return False
    serial = event.get("ID_SERIAL_SHORT", "")
    return not (interest.usb_serial and serial and serial != interest.usb_serial)


class Hotplug:
    """Sources waiting for their device, woken by :meth:`dispatch` (on the event loop)."""

    def __init__(self) -> None:
        self._waiting: dict[int, tuple[Interest, asyncio.Event]] = {}
        self._next = 0
        self.events = 0
        """udev events seen."""

    async def wait(self, interest: Interest, delay: float) -> bool:
        """Wait up to ``delay`` s for a matching event; True when one came."""
        key = self._next
        self._next += 1
        woken = asyncio.Event()
        self._waiting[key] = (interest, woken)
        try:
            # asyncio.timeout, not wait_for, which on Python 3.11 can swallow a cancel.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await woken.wait()
            return woken.is_set()
        finally:
            del self._waiting[key]

    def dispatch(self, event: Mapping[str, Any]) -> int:
        """Wake every waiter the event may concern; return how many."""
        self.events += 1
        count = 0
        for interest, woken in self._waiting.values():
            if not woken.is_set() and wakes(event, interest):
                woken.set()
                count += 1
        if count:
            log.debug(
                "udev %s %s: woke %d source(s)",
                event.get("ACTION"),
                event.get("DEVNAME"),
                count,
            )
        return count


def device_event(device: Any) -> dict[str, str]:
    """A pyudev ``Device`` as the property dict :func:`wakes` takes."""
    event = {str(k): str(v) for k, v in dict(device.properties).items()}
    event.setdefault("ACTION", str(device.action or ""))
    event.setdefault("SUBSYSTEM", str(device.subsystem or ""))
    if device.device_node:
        event.setdefault("DEVNAME", str(device.device_node))
    return event


class UdevMonitor:
    """pyudev's netlink monitor on the event loop, feeding a :class:`Hotplug`."""

    def __init__(self, hub: Hotplug, pyudev: Any, subsystems: Iterable[str] = SUBSYSTEMS) -> None:
        self.hub = hub
        self.monitor = pyudev.Monitor.from_netlink(pyudev.Context())
        for subsystem in subsystems:
            self.monitor.filter_by(subsystem=subsystem)
        self.monitor.start()
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read the monitor's socket whenever it is readable."""
        self._loop = loop
        loop.add_reader(self.monitor.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            device = self.monitor.poll(timeout=0)
            if device is None:
                return
            self.hub.dispatch(device_event(device))

    def close(self) -> None:
        """Stop reading (the socket is closed with the monitor)."""
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.monitor.fileno())
            self._loop = None


_shared: dict[asyncio.AbstractEventLoop, Hotplug | None] = {}


def for_loop(loop: asyncio.AbstractEventLoop) -> Hotplug | None:
    """The running loop's udev-fed :class:`Hotplug`, or ``None`` (polling only).

    ``None`` when pyudev is not installed (``pip install 'scanner-agent[hotplug]'``)
    or the netlink socket cannot be opened (no udev, a restricted container).
    """
    if loop not in _shared:
        _shared[loop] = _start(loop)
    return _shared[loop]


def _start(loop: asyncio.AbstractEventLoop) -> Hotplug | None:
    try:
        pyudev = importlib.import_module("pyudev")
    except ImportError:
        log.info("pyudev not installed: hot-plug by polling (`scanner-agent doctor` says more)")
        return None
    hub = Hotplug()
    try:
        monitor = UdevMonitor(hub, pyudev)
        monitor.attach(loop)
    except Exception as exc:  # netlink refused, libudev missing: poll instead
        log.info("udev monitor unavailable (%s): hot-plug by polling", exc)
        return None
    log.debug("udev monitor on netlink: hot-plug by events")
    return hub
