"""Keyboard-wedge scanners through Linux evdev, grabbed so their keys reach no console.

A scanner in USB keyboard mode is an input device (``/dev/input/eventN``).
:class:`WedgeSource` opens it with python-evdev (imported only here, when a
wedge source starts; the ``wedge`` extra, which every full install has), **grabs** it
(``EVIOCGRAB``: while the agent reads, the scanner's keystrokes go to no
console, X session or login prompt), reads key events in its reader thread
and turns them into text with :class:`drivers.wedge_keys.WedgeDecoder` in the
``layout`` the host keyboard uses.

Which node: the ``device`` key (best a stable ``/dev/input/by-id/...-event-kbd``
link), else the first input device with letter and Enter keys whose USB ids
are the profile's ``keyboard`` ids (and whose USB serial number is
``usb_serial``, when given).  The search runs again at every reconnect.

Feedback: a keyboard has no way back to the scanner, so nothing is sent; the
outcome is kept in ``last_outcome`` (and logged at debug level) for the TUI
or a terminal bell.

Status attributes: see :mod:`drivers.device` (``connected``, ``device``,
``model``, ``last_scan_at``, ``errors``, ``last_outcome``).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from drivers import discovery, hotplug
from drivers.device import DeviceSource
from drivers.framing import DEFAULT_MAX_FRAME, Frame
from drivers.profiles import Profile
from drivers.reader import FdReader, device_errors
from drivers.source_profiles import describe, load_source_profile, usb_ids
from drivers.wedge_keys import WedgeDecoder
from scanner_agent.kernel import ConfigError, DeviceUnavailable

log = logging.getLogger(__name__)

EV_KEY = 1
"""Linux ``input-event-codes.h`` event type of key events."""

KeyEvents = list[tuple[int, int]]
"""``(code, value)`` pairs as :class:`drivers.wedge_keys.WedgeDecoder` takes them."""


class InputEvent(Protocol):
    """The fields of ``evdev.InputEvent`` used here."""

    @property
    def type(self) -> int:
        """Event type (``EV_KEY`` = 1)."""
        ...

    @property
    def code(self) -> int:
        """Key code."""
        ...

    @property
    def value(self) -> int:
        """1 down, 0 up, 2 auto-repeat."""
        ...


class InputDevice(Protocol):
    """The part of ``evdev.InputDevice`` used here (a test passes a fake)."""

    @property
    def fd(self) -> int:
        """File descriptor to wait on."""
        ...

    def read(self) -> Iterable[InputEvent]:
        """Events available now; raises ``BlockingIOError`` when there are none."""
        ...

    def grab(self) -> None:
        """Take the device exclusively."""
        ...

    def ungrab(self) -> None:
        """Release it."""
        ...

    def close(self) -> None:
        """Close it."""
        ...


def load_evdev() -> Any:
    """Import python-evdev.

    Raises:
        ConfigError: it is not installed; the message says how to add it to this install.
    """
    try:
        return importlib.import_module("evdev")
    except ImportError as exc:
        # How to add it depends on how the agent was installed: doctor knows (roles).
        raise ConfigError(
            f"python-evdev is not installed ({exc}): `scanner-agent doctor` says how to add "
            "the wedge role to this install"
        ) from exc


def open_evdev(path: str) -> InputDevice:
    """Open an input device with python-evdev (imported here, lazily).

    Raises:
        ConfigError: python-evdev is not installed.
        OSError: the node cannot be opened.
    """
    device: InputDevice = load_evdev().InputDevice(path)
    return device


class WedgeLink:
    """An open (and grabbed) input device as a :class:`drivers.device.Link`."""

    def __init__(self, device: InputDevice, path: str, *, grabbed: bool) -> None:
        self.input = device
        self.path = path
        self.grabbed = grabbed
        self._wait = FdReader(device.fd, path)

    def read(self) -> KeyEvents:
        """Key events available now (waits for some; empty when cancelled)."""
        if not self._wait.wait():
            return []
        try:
            events = list(self.input.read())
        except BlockingIOError:
            return []
        return [(e.code, e.value) for e in events if e.type == EV_KEY]

    def cancel(self) -> None:
        """Wake a blocked read."""
        self._wait.cancel()

    def close(self) -> None:
        """Release the grab and close the device."""
        self._wait.close()
        if self.grabbed:
            with contextlib.suppress(OSError):
                self.input.ungrab()
        with contextlib.suppress(OSError):
            self.input.close()


class WedgeSource(DeviceSource[KeyEvents]):
    """Reads one keyboard-wedge scanner through evdev (see the module docstring)."""

    def __init__(
        self,
        name: str,
        device: str = "",
        *,
        profile: Profile,
        layout: str = "us",
        usb_serial: str = "",
        grab: bool = True,
        max_frame: int | None = None,
        sysfs: Path | str = discovery.SYSFS,
        dev: Path | str = discovery.DEV,
        opener: Callable[[str], InputDevice] = open_evdev,
        reconnect_initial_s: float = 0.05,
        reconnect_max_s: float = 5.0,
    ) -> None:
        super().__init__(
            name,
            device or f"usb:{profile.id}",
            model=describe(profile),
            reconnect_initial_s=reconnect_initial_s,
            reconnect_max_s=reconnect_max_s,
        )
        WedgeDecoder(layout)  # raises ValueError for an unknown layout, now
        self.profile = profile
        self.layout = layout
        self.configured_device = device
        """The ``device`` key; empty when the node is found by USB ids."""
        self.usb_serial = usb_serial
        self.grab = grab
        self.max_frame = max_frame or profile.framing.max_frame or DEFAULT_MAX_FRAME
        self.sysfs = Path(sysfs)
        self.dev = Path(dev)
        self._opener = opener
        self._decoder: WedgeDecoder | None = None

    def _prepare(self) -> None:
        # The daemon says "Failed to start source <name>: " before this message.
        if self._opener is open_evdev:
            load_evdev()

    def find(self) -> str | None:
        """The event node of the profile's scanner, if one is plugged in."""
        found = discovery.discover(
            self.sysfs, dev=self.dev, kinds=("input",), match_profiles=False
        ).input
        device = discovery.select(
            found,
            ids=usb_ids(self.profile, "keyboard"),
            usb_serial=self.usb_serial,
            predicate=lambda d: d.keyboard is not False,
        )
        return device.path if device is not None else None

    def _interest(self) -> hotplug.Interest | None:
        return hotplug.Interest(
            ("input",), frozenset(usb_ids(self.profile, "keyboard")), self.usb_serial
        )

    def _open(self) -> WedgeLink:
        path = self.configured_device or self.find()
        if path is None:
            raise DeviceUnavailable(
                f"Failed to find a keyboard-wedge scanner for profile {self.profile.id!r}"
                + (f" with USB serial {self.usb_serial!r}" if self.usb_serial else ""),
                device=self.device,
            )
        with device_errors(path, "open", DeviceUnavailable):
            device = self._opener(path)
        if self.grab:
            try:
                with device_errors(path, "grab", DeviceUnavailable):
                    device.grab()
            except DeviceUnavailable:
                with contextlib.suppress(OSError):
                    device.close()
                raise
        self.device = path
        return WedgeLink(device, path, grabbed=self.grab)

    async def _connected(self, link: Any) -> None:
        self._decoder = WedgeDecoder(self.layout, max_frame=self.max_frame)

    async def _handle(self, link: Any, data: KeyEvents) -> None:
        assert self._decoder is not None
        for event in self._decoder.feed(data):
            if isinstance(event, Frame):
                await self._submit(event.data)
            else:
                self._error("%s from %s", event.reason, self.device)


def build(name: str, options: dict[str, Any]) -> WedgeSource:
    """Factory used by :mod:`drivers.registry`."""
    profile = load_source_profile(options["profile"], "source")
    return WedgeSource(
        name or f"wedge:{options['device'] or options['usb_serial'] or profile.id}",
        options["device"],
        profile=profile,
        layout=options["layout"],
        usb_serial=options["usb_serial"],
        grab=options["grab"],
        reconnect_max_s=options["reconnect_max_s"],
    )
