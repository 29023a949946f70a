"""The table of source types: option schema and factory per ``[[source]] type``.

Config validation asks this table about a source's keys when the file loads
(so a typo is reported before anything starts), and the daemon asks it to
build the source.  A new driver adds one :class:`SourceType` entry.

It takes plain values (a type name, the table's own keys, a name), never the
config's classes: the config sits above the drivers and calls down into this
module, not the other way round.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drivers.naming import source_label
from drivers.tcp_limits import parse_allowlist
from scanner_agent.kernel import LISTEN_ANY as LISTEN_ANY  # re-exported: the listen default
from scanner_agent.kernel import ConfigError, parse_host_port, unknown_key

if TYPE_CHECKING:
    from scanner_agent.kernel import Source


@dataclass(frozen=True, slots=True)
class Option:
    """One type-specific key of a ``[[source]]`` table."""

    type: type
    default: Any = None
    required: bool = False
    help: str = ""
    item: Any = None
    """For ``type=list``: the type every element must have (a class)."""
    check: Callable[[Any], object] | None = None
    """Further validation of a given value; raises ConfigError saying what is wrong."""


@dataclass(frozen=True, slots=True)
class SourceType:
    """A driver as the config sees it."""

    name: str
    factory: str
    """``module:function`` taking ``(name, options)`` and returning a Source: ``name`` is the
    table's ``name`` (``""`` when it gives none), ``options`` the checked options with defaults.
    Imported only when such a source is built, so unused drivers' libraries stay unloaded."""
    options: Mapping[str, Option]
    main_option: str
    """Option whose value names the source by default (``tcp:127.0.0.1:9100``)."""
    help: str = ""
    needs: Callable[[Mapping[str, Any]], tuple[str, ...]] = lambda options: ()
    """The roles (:data:`scanner_agent.ops.roles.ROLES`) whose libraries a source with these
    (resolved) options loads when it starts; :func:`scanner_agent.ops.roles.check_driver` checks
    them before a source starts."""


COMMON_KEYS = ("type", "name", "action", "bill")
"""Keys every ``[[source]]`` table may have beside its type's own options (the config
reads them; the type's options are the rest of the table)."""
TERMINATOR_CHOICES = ("lf", "cr", "crlf", "tab")
HIDPOS_BACKENDS = ("auto", "hidraw", "pyusb")
"""Values of a hidpos source's ``backend`` key (drivers.usbhid.BACKENDS, not imported here)."""


def _hidpos_needs(options: Mapping[str, Any]) -> tuple[str, ...]:
    # auto picks pyusb only where it imports; pyusb asked for by name must import.
    return ("usb",) if options.get("backend") == "pyusb" else ()


def _camera_needs(options: Mapping[str, Any]) -> tuple[str, ...]:
    decoder = options.get("decoder")
    return ("camera", "zbar") if decoder in ("pyzbar", "both") else ("camera",)


def _check_backend(value: str) -> None:
    if value not in HIDPOS_BACKENDS:
        raise ConfigError(f"expected one of {', '.join(HIDPOS_BACKENDS)}, got {value!r}")


def _at_least(low: int) -> Callable[[int], None]:
    def check(value: int) -> None:
        if value < low:
            raise ConfigError(f"expected at least {low}, got {value}")

    return check


def _not_negative(value: float) -> None:
    if value < 0:
        raise ConfigError(f"expected 0 or more, got {value:g}")


def _positive(value: float) -> None:
    if value <= 0:
        raise ConfigError(f"expected more than 0, got {value:g}")


def _check_allowlist(value: list[str]) -> None:
    try:
        parse_allowlist(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


TCP_PROTOCOLS = (1, 2)
"""Reply grammars a tcp source speaks (drivers.tcp_protocol.VERSIONS, not imported here)."""


def _check_protocol(value: int) -> None:
    if value not in TCP_PROTOCOLS:
        raise ConfigError(f"expected one of {', '.join(map(str, TCP_PROTOCOLS))}, got {value!r}")


SOURCE_TYPES: dict[str, SourceType] = {
    "tcp": SourceType(
        name="tcp",
        factory="drivers.tcp:build",
        main_option="listen",
        help="Fixed-mount scanners and terminals sending lines over TCP.",
        options={
            "listen": Option(
                str, required=True, help="host:port to listen on, e.g. 127.0.0.1:9100"
            ),
            "ack": Option(
                bool,
                False,
                help="answer each frame with one ACK or NAK line (docs/tcp-protocol.md)",
            ),
            "terminator": Option(str, "lf", help="line end: lf, cr, crlf (any of them) or tab"),
            "max_frame": Option(int, 4096, help="longest line accepted, in bytes"),
            "max_clients": Option(
                int,
                32,
                help="most connections at once; a new one evicts the longest-idle one",
                check=_at_least(1),
            ),
            "max_in_flight": Option(
                int,
                256,
                help="frames of one connection read but not yet answered",
                check=_at_least(1),
            ),
            "max_in_flight_bytes": Option(
                int, 256 * 1024, help="bytes of those frames", check=_at_least(1024)
            ),
            "total_in_flight": Option(
                int,
                4096,
                help="frames of all connections read but not yet answered",
                check=_at_least(1),
            ),
            "total_in_flight_bytes": Option(
                int, 4 * 1024 * 1024, help="bytes of those frames", check=_at_least(1024)
            ),
            "idle_timeout_s": Option(
                float,
                600.0,
                help="close a connection silent this long (0: never)",
                check=_not_negative,
            ),
            "read_timeout_s": Option(
                float,
                10.0,
                help="a frame must end this long after its first byte (0: no limit)",
                check=_not_negative,
            ),
            "write_timeout_s": Option(
                float,
                30.0,
                help="close a connection whose peer takes no replies this long (0: no limit)",
                check=_not_negative,
            ),
            "keepalive_s": Option(
                float,
                60.0,
                help="TCP keepalive after this much silence; dead peers dropped 1.5x later (0: off)",
                check=_not_negative,
            ),
            "refused_per_s": Option(
                float,
                20.0,
                help="refused frames a second a peer may send before it is slowed down",
                check=_positive,
            ),
            "refused_burst": Option(
                int, 200, help="refused frames a peer may send at once", check=_at_least(1)
            ),
            "allow": Option(
                list,
                (),
                item=str,
                check=_check_allowlist,
                help='scanner addresses allowed to connect, e.g. ["10.1.2.0/24"]; [] for any',
            ),
            "protocol": Option(
                int,
                2,
                help="reply grammar: 2, or 1 for controllers written for ACK <code> lines",
                check=_check_protocol,
            ),
        },
    ),
    "replay": SourceType(
        name="replay",
        factory="drivers.replay:build",
        main_option="path",
        help='Lines from a file, or standard input with path = "-".',
        options={
            "path": Option(str, "-", help="file to read, - for standard input"),
            "rate": Option(float, 0.0, help="scans per second, 0 for as fast as committed"),
            "terminator": Option(str, "lf", help="line end: lf, cr, crlf (any of them) or tab"),
            "max_frame": Option(int, 4096, help="longest line accepted, in bytes"),
        },
    ),
    "serial": SourceType(
        name="serial",
        factory="drivers.serialport:build",
        main_option="port",
        help="RS-232 and USB CDC-ACM scanners through pyserial: plain text, Honeywell or Zebra SSI.",
        options={
            "port": Option(
                str, required=True, help="device path or pyserial URL, e.g. /dev/ttyACM0"
            ),
            "profile": Option(
                str, "generic-serial", help="firmware profile: a file stem in firmware_profiles"
            ),
            "protocol": Option(str, None, help="plain, honeywell or ssi (default: the profile's)"),
            "baudrate": Option(
                int, None, help="bits per second (default: the profile's, else 9600)"
            ),
            "reconnect_max_s": Option(float, 5.0, help="longest wait between reopen attempts"),
        },
    ),
    "hidpos": SourceType(
        name="hidpos",
        factory="drivers.hidraw:build",
        main_option="device",
        help="USB HID POS scanners read through Linux hidraw (/dev/hidrawN).",
        needs=_hidpos_needs,
        options={
            "profile": Option(
                str, "generic-hidpos", help="firmware profile with a [hidpos] layout"
            ),
            "device": Option(
                str, "", help="/dev/hidrawN (default: found by the profile's USB ids)"
            ),
            "usb_serial": Option(str, "", help="only the scanner with this USB serial number"),
            "backend": Option(
                str,
                "auto",
                help="hidraw, pyusb, or auto (hidraw where the kernel has it, else pyusb)",
                check=_check_backend,
            ),
            "reconnect_max_s": Option(float, 5.0, help="longest wait between reopen attempts"),
        },
    ),
    "wedge": SourceType(
        name="wedge",
        factory="drivers.wedge:build",
        main_option="device",
        help="USB keyboard-wedge scanners read (and grabbed) through evdev.",
        needs=lambda options: ("wedge",),
        options={
            "profile": Option(
                str, "generic-wedge", help="firmware profile with a keyboard interface"
            ),
            "device": Option(
                str, "", help="/dev/input/eventN (default: found by the profile's USB ids)"
            ),
            "usb_serial": Option(str, "", help="only the scanner with this USB serial number"),
            "layout": Option(str, "us", help="host keyboard layout: us, uk, de or fr"),
            "grab": Option(bool, True, help="take the device exclusively (keys reach no console)"),
            "reconnect_max_s": Option(float, 5.0, help="longest wait between reopen attempts"),
        },
    ),
    "camera": SourceType(
        name="camera",
        factory="drivers.camera:build",
        main_option="device",
        help="Every code on a carton or pallet face, read from camera or video frames (OpenCV).",
        needs=_camera_needs,
        options={
            "device": Option(
                str,
                required=True,
                help="/dev/video0, rtsp://... or http://... stream, a video file or an image folder",
            ),
            "decoder": Option(
                str,
                "auto",
                help="auto (zxing-cpp, and ZBar where installed: never fewer codes than "
                "either), zxing, pyzbar, or both (auto that needs ZBar)",
                check=lambda v: importlib.import_module("drivers.decode_options").check_decoder(v),
            ),
            "formats": Option(
                list,
                ("Code128", "DataMatrix", "QRCode"),
                item=str,
                check=lambda v: importlib.import_module("drivers.decode_options").format_names(v),
                help='symbologies to look for, e.g. ["DataMatrix", "Code128"]; [] for all (slower)',
            ),
            "width": Option(int, 0, help="requested capture width in pixels, 0 for the device's"),
            "height": Option(int, 0, help="requested capture height in pixels, 0 for the device's"),
            "fps": Option(
                float,
                0.0,
                help="camera frame rate to request; files: playback rate, 0 for every frame",
            ),
            "roi": Option(
                list,
                (),
                item=int,
                check=lambda v: importlib.import_module("drivers.decode_options").check_roi(v),
                help="[x, y, w, h] region to decode, [] for the whole frame",
            ),
            "dedupe_s": Option(
                float, 2.0, help="a code seen again within this many seconds is the same scan"
            ),
            "confirm_frames": Option(int, 1, help="accept a code once seen in this many frames"),
            "frame_budget_ms": Option(
                float,
                50.0,
                help="no retry pass starts after this much decoding per frame, 0 for no limit",
            ),
            "reconnect_max_s": Option(float, 5.0, help="longest wait between reopen attempts"),
            "stall_s": Option(
                float,
                5.0,
                help="a stream that delivers no frame for this long is reconnected "
                "(the stall watchdog; also FFmpeg's open and read timeout)",
            ),
            "locate": Option(
                bool,
                True,
                help="decode only the areas that look like symbols (line speed at 1080p), "
                "the whole frame every full_frame_every frames",
            ),
            "full_frame_every": Option(
                int, 10, help="with locate: decode the whole frame every N frames (0: never)"
            ),
        },
    ),
}

HARDWARE_TYPES = ("serial", "hidpos", "wedge")
"""Source types backed by a device and a firmware profile (checked by drivers.device_options)."""


def resolve_options(type_name: str, options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Type-check the options of a ``type_name`` source (its table's keys but
    :data:`COMMON_KEYS`) and fill in defaults; ``where`` names the table in errors.

    Raises:
        ConfigError: unknown type, unknown key, wrong type or missing key, named.
    """
    st = SOURCE_TYPES.get(type_name)
    if st is None:
        raise unknown_key(
            f"{where}.type", SOURCE_TYPES, f"unknown source type {type_name!r}", given=type_name
        )
    out: dict[str, Any] = {}
    for key, value in options.items():
        opt = st.options.get(key)
        if opt is None:
            known = [*COMMON_KEYS, *st.options]
            raise unknown_key(f"{where}.{key}", known, f"unknown key for a {type_name} source")
        out[key] = _checked(opt, value, f"{where}.{key}")
    for key, opt in st.options.items():
        if key not in out:
            if opt.required:
                raise ConfigError(f"{where}.{key}: missing (required for a {type_name} source)")
            out[key] = list(opt.default) if isinstance(opt.default, list | tuple) else opt.default
    if "terminator" in out and out["terminator"] not in TERMINATOR_CHOICES:
        raise ConfigError(
            f"{where}.terminator: expected one of {', '.join(TERMINATOR_CHOICES)}, got {out['terminator']!r}"
        )
    if "max_frame" in out and not 16 <= out["max_frame"] <= 1 << 20:
        raise ConfigError(f"{where}.max_frame: expected 16..1048576, got {out['max_frame']}")
    if "listen" in out:
        parse_host_port(out["listen"], f"{where}.listen", default_host=LISTEN_ANY)
    if type_name in HARDWARE_TYPES:
        from drivers.device_options import check_options

        check_options(type_name, out, where)
    return out


def _checked(opt: Option, value: Any, key: str) -> Any:
    """One option's value, type-checked (an int is taken for a float) and ``opt.check``-ed."""
    if opt.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, opt.type) or (opt.type is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {opt.type.__name__}, got {value!r}")
    if (
        opt.item is not None
        and isinstance(value, list)
        and any(
            not isinstance(v, opt.item) or (opt.item is int and isinstance(v, bool)) for v in value
        )
    ):
        raise ConfigError(f"{key}: expected a list of {opt.item.__name__}, got {value!r}")
    if opt.check is not None:
        try:
            opt.check(value)
        except ConfigError as exc:
            raise ConfigError(f"{key}: {exc}") from exc
    return value


def source_name(type_name: str, name: str, options: Mapping[str, Any]) -> str:
    """The label used in logs and scans: ``name``, else ``<type>:<main option>``."""
    return source_label(type_name, name, options.get(SOURCE_TYPES[type_name].main_option, ""))


def build_source(
    type_name: str, options: Mapping[str, Any], *, name: str = "", where: str = "source"
) -> Source:
    """Build the driver for one ``[[source]]`` table: its type, its own options, its name."""
    resolved = resolve_options(type_name, options, where)
    module_name, _, func = SOURCE_TYPES[type_name].factory.partition(":")
    factory = getattr(importlib.import_module(module_name), func)
    source: Source = factory(name, resolved)
    return source
