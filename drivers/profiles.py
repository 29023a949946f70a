"""Firmware profiles: what the agent knows about a scanner model, as TOML data.

Profiles ship in the top-level ``firmware_profiles`` package (one ``<id>.toml``
per model; the file stem is the profile id) and are read with
``importlib.resources``; sites can add or override profiles in extra
directories such as :data:`SITE_PROFILE_DIR` (a file there replaces a shipped
profile with the same stem).  The schema is documented in
``docs/firmware-profiles.md``; every key is validated at load time and unknown
keys are errors, reported as::

    Failed to load profile 'x.toml': [serial].baudrate: expected one of ..., got 1234

Values a vendor manual does not state are simply absent (``None`` here): a
profile never guesses.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final

from drivers import hidpos, honeywell, ssi
from drivers.framing import TERMINATORS
from scanner_agent.kernel import ConfigError

PACKAGE: Final = "firmware_profiles"
"""The package holding the shipped profiles."""
SITE_PROFILE_DIR: Final = Path("/etc/scanner-agent/profiles")
"""Conventional directory for site-specific profiles (pass it as ``extra_dirs``)."""

USB_MODES: Final = ("cdc-acm", "hid-pos", "keyboard", "ssi-cdc")
"""How a scanner presents itself on USB; each mode has its own product ID."""
INTERFACES: Final = ("rs232", *USB_MODES)
"""Interfaces a model supports (RS-232 plus the USB modes)."""
BAUDRATES: Final = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
BYTESIZES: Final = (7, 8)
PARITIES: Final = ("none", "even", "odd", "mark", "space")
STOPBITS: Final = (1, 2)
FLOW_CONTROLS: Final = ("none", "rtscts", "xonxoff")
PROTOCOLS: Final = ("plain", "honeywell", "ssi")
MAX_FRAME_LIMIT: Final = 65536
"""Largest ``[framing].max_frame`` accepted."""
COMMAND_NAMES: Final = (
    "aim_on",
    "suffix_cr",
    "trigger_on",
    "trigger_off",
    "good_read",
    "bad_read",
    "duplicate_read",
)
_STEM = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class ProfileError(ConfigError):
    """A profile file is missing, unreadable or invalid (a branch of the config errors: a
    profile is configuration the agent reads, and the message names the file and key)."""


def usb_id_text(vid: int, pid: int) -> str:
    """``1eab:1a10``: a USB vendor and product ID as ``lsusb``, udev and ``devices`` write them."""
    return f"{vid:04x}:{pid:04x}"


@dataclass(frozen=True, slots=True)
class UsbId:
    """One USB identity of a model: the IDs it enumerates with in one mode."""

    mode: str
    """One of :data:`USB_MODES`."""
    vid: int
    """USB vendor ID."""
    pid: int
    """USB product ID."""

    @property
    def text(self) -> str:
        """``1eab:1a10`` (:func:`usb_id_text`)."""
        return usb_id_text(self.vid, self.pid)


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """The scanner's factory serial settings; ``None`` where no manual states one."""

    baudrate: int | None = None
    """Bits per second, one of :data:`BAUDRATES`."""
    bytesize: int | None = None
    """Data bits: 7 or 8."""
    parity: str | None = None
    """One of :data:`PARITIES`."""
    stopbits: int | None = None
    """1 or 2."""
    flow_control: str | None = None
    """``none``, ``rtscts`` or ``xonxoff``."""
    protocol: str | None = None
    """``plain`` (framed text), ``honeywell`` (SYN commands) or ``ssi`` (Zebra SSI)."""


@dataclass(frozen=True, slots=True)
class FramingSettings:
    """How frames are delimited in the scanner's factory configuration."""

    terminator: bytes | None = None
    """Suffix ending each bar code (a :data:`~drivers.framing.TERMINATORS` name or bytes)."""
    aim_prefix: bool | None = None
    """Whether the scanner prefixes the AIM symbology identifier (``]xy``)."""
    max_frame: int | None = None
    """Longest frame to accept, in bytes."""


@dataclass(frozen=True, slots=True)
class CommandSet:
    """Bytes to write to the scanner for each action; ``None`` when unknown."""

    aim_on: bytes | None = None
    """Enable the AIM symbology identifier prefix."""
    suffix_cr: bytes | None = None
    """Make CR the bar code suffix."""
    trigger_on: bytes | None = None
    """Start a scan (software trigger)."""
    trigger_off: bytes | None = None
    """Stop a scan."""
    good_read: bytes | None = None
    """Good-read feedback (beep/LED)."""
    bad_read: bytes | None = None
    """Bad-read feedback."""
    duplicate_read: bytes | None = None
    """Feedback for a duplicate scan."""


@dataclass(frozen=True, slots=True)
class HidPosFeedback:
    """Output reports written to a HID POS scanner's hidraw node after the commit.

    Each is one whole output report as ``write(2)`` on ``/dev/hidrawN`` takes it:
    the report ID first, then the report's bytes.  ``None`` where no source
    confirms a report that makes the scanner signal the outcome.
    """

    good_read: bytes | None = None
    bad_read: bytes | None = None
    duplicate_read: bytes | None = None

    @property
    def any(self) -> bool:
        """True when at least one report is defined (the node is then opened read-write)."""
        return any(r is not None for r in (self.good_read, self.bad_read, self.duplicate_read))


@dataclass(frozen=True, slots=True)
class Quirks:
    """Known misbehaviour to work around."""

    modemmanager_probes: bool | None = None
    """True when ModemManager probes the CDC-ACM port with AT commands unless the
    device is excluded by a udev rule (``ID_MM_DEVICE_IGNORE``)."""
    notes: str = ""
    """Free text for installers."""


@dataclass(frozen=True, slots=True)
class Profile:
    """One scanner model's profile, validated."""

    id: str
    """The file stem, e.g. ``honeywell-xenon-1900g``."""
    vendor: str
    model: str
    interfaces: tuple[str, ...]
    """Interfaces the model supports, from :data:`INTERFACES`."""
    usb_ids: tuple[UsbId, ...] = ()
    serial: SerialSettings | None = None
    """``None`` when the profile has no ``[serial]`` table."""
    framing: FramingSettings = FramingSettings()
    hidpos_layout: str | None = None
    """Name of the base layout in :data:`drivers.hidpos.LAYOUTS`; ``None`` when the
    profile has no ``[hidpos]`` table or defines its layout in full."""
    hidpos_report_layout: hidpos.HidPosLayout | None = None
    """The input report layout in use: the named layout with the profile's
    ``[hidpos]`` field overrides, or the profile's own; ``None`` without ``[hidpos]``."""
    hidpos_feedback: HidPosFeedback = HidPosFeedback()
    """Output reports for good/bad/duplicate reads in HID POS mode."""
    commands: CommandSet = CommandSet()
    quirks: Quirks = Quirks()
    source: str = ""
    """Where the profile was loaded from (for messages)."""


# --- validation helpers -------------------------------------------------------


class _Ctx:
    """Carries the file name so every error names file and key."""

    def __init__(self, filename: str) -> None:
        self.filename = filename

    def fail(self, key: str, message: str) -> ProfileError:
        return ProfileError(f"Failed to load profile {self.filename!r}: {key}: {message}")

    def table(self, data: Mapping[str, Any], key: str, name: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(name, f"expected a table, got {type(value).__name__}")
        return value

    def keys(self, data: Mapping[str, Any], name: str, allowed: Iterable[str]) -> None:
        extra = sorted(set(data) - set(allowed))
        if extra:
            raise self.fail(
                f"{name}.{extra[0]}" if name else extra[0],
                f"unknown key (expected one of {sorted(allowed)})",
            )

    def string(
        self, data: Mapping[str, Any], key: str, name: str, *, required: bool = False
    ) -> str | None:
        if key not in data:
            if required:
                raise self.fail(f"{name}.{key}", "missing required key")
            return None
        value = data[key]
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{name}.{key}", f"expected a non-empty string, got {value!r}")
        return value

    def required(self, data: Mapping[str, Any], key: str, name: str) -> str:
        value = self.string(data, key, name, required=True)
        assert value is not None  # string() raises for a missing required key
        return value

    def choice(self, data: Mapping[str, Any], key: str, name: str, options: tuple[Any, ...]) -> Any:
        if key not in data:
            return None
        value = data[key]
        if isinstance(value, bool) or value not in options:
            raise self.fail(f"{name}.{key}", f"expected one of {list(options)}, got {value!r}")
        return value

    def boolean(self, data: Mapping[str, Any], key: str, name: str) -> bool | None:
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, bool):
            raise self.fail(f"{name}.{key}", f"expected true or false, got {value!r}")
        return value

    def integer(self, value: Any, name: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(name, f"expected an integer in {low}..{high}, got {value!r}")
        return value


def _to_bytes(ctx: _Ctx, value: str, name: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise ctx.fail(
            name, f"expected characters U+0000..U+00FF (one byte each), got {value!r}"
        ) from None


def _command(ctx: _Ctx, value: Any, name: str) -> bytes:
    """A command is a TOML string (bytes) or a structured table."""
    if isinstance(value, str):
        if not value:
            raise ctx.fail(name, "expected a non-empty string")
        return _to_bytes(ctx, value, name)
    if not isinstance(value, dict):
        raise ctx.fail(name, f"expected a string or a table, got {value!r}")
    if "honeywell_menu" in value:
        ctx.keys(value, name, ("honeywell_menu", "permanent"))
        menu = value["honeywell_menu"]
        if not isinstance(menu, list) or not all(
            isinstance(item, list) and len(item) == 3 and all(isinstance(p, str) for p in item)
            for item in menu
        ):
            raise ctx.fail(
                f"{name}.honeywell_menu",
                f"expected a list of [tag, subtag, data] string triples, got {menu!r}",
            )
        permanent = ctx.boolean(value, "permanent", name) or False
        try:
            return honeywell.menu_command([(t, s, d) for t, s, d in menu], permanent=permanent)
        except ValueError as exc:
            raise ctx.fail(f"{name}.honeywell_menu", str(exc)) from None
    if "ssi" in value:
        ctx.keys(value, name, ("ssi", "data"))
        opcode = value["ssi"]
        options = [op.name for op in ssi.Opcode]
        if opcode not in options:
            raise ctx.fail(f"{name}.ssi", f"expected one of {options}, got {opcode!r}")
        data = value.get("data", [])
        if not isinstance(data, list):
            raise ctx.fail(f"{name}.data", f"expected a list of bytes, got {data!r}")
        payload = bytes(ctx.integer(b, f"{name}.data", 0, 255) for b in data)
        try:
            return ssi.encode_packet(ssi.Opcode[opcode], payload)
        except ValueError as exc:
            raise ctx.fail(f"{name}.data", str(exc)) from None
    raise ctx.fail(name, "expected a table with 'honeywell_menu' or 'ssi'")


def _usb(ctx: _Ctx, data: Mapping[str, Any], interfaces: tuple[str, ...]) -> tuple[UsbId, ...]:
    usb = ctx.table(data, "usb", "[usb]")
    ctx.keys(usb, "[usb]", ("ids",))
    entries = usb.get("ids", [])
    if not isinstance(entries, list):
        raise ctx.fail("[usb].ids", "expected an array of tables ([[usb.ids]])")
    ids: list[UsbId] = []
    for index, entry in enumerate(entries):
        name = f"[[usb.ids]][{index}]"
        if not isinstance(entry, dict):
            raise ctx.fail(name, f"expected a table, got {entry!r}")
        ctx.keys(entry, name, ("mode", "vid", "pid"))
        for key in ("mode", "vid", "pid"):
            if key not in entry:
                raise ctx.fail(f"{name}.{key}", "missing required key")
        mode = ctx.choice(entry, "mode", name, USB_MODES)
        if mode not in interfaces:
            raise ctx.fail(
                f"{name}.mode", f"{mode!r} is not listed in [profile].interfaces {list(interfaces)}"
            )
        vid = ctx.integer(entry["vid"], f"{name}.vid", 0, 0xFFFF)
        pid = ctx.integer(entry["pid"], f"{name}.pid", 0, 0xFFFF)
        ids.append(UsbId(mode, vid, pid))
    return tuple(ids)


def _serial(ctx: _Ctx, data: Mapping[str, Any]) -> SerialSettings | None:
    if "serial" not in data:
        return None
    table = ctx.table(data, "serial", "[serial]")
    ctx.keys(
        table,
        "[serial]",
        ("baudrate", "bytesize", "parity", "stopbits", "flow_control", "protocol"),
    )
    return SerialSettings(
        baudrate=ctx.choice(table, "baudrate", "[serial]", BAUDRATES),
        bytesize=ctx.choice(table, "bytesize", "[serial]", BYTESIZES),
        parity=ctx.choice(table, "parity", "[serial]", PARITIES),
        stopbits=ctx.choice(table, "stopbits", "[serial]", STOPBITS),
        flow_control=ctx.choice(table, "flow_control", "[serial]", FLOW_CONTROLS),
        protocol=ctx.choice(table, "protocol", "[serial]", PROTOCOLS),
    )


def _framing(ctx: _Ctx, data: Mapping[str, Any]) -> FramingSettings:
    table = ctx.table(data, "framing", "[framing]")
    ctx.keys(table, "[framing]", ("terminator", "aim_prefix", "max_frame"))
    terminator: bytes | None = None
    raw = ctx.string(table, "terminator", "[framing]")
    if raw is not None:
        terminator = TERMINATORS.get(raw.lower()) or _to_bytes(ctx, raw, "[framing].terminator")
    max_frame = None
    if "max_frame" in table:
        max_frame = ctx.integer(table["max_frame"], "[framing].max_frame", 1, MAX_FRAME_LIMIT)
    return FramingSettings(terminator, ctx.boolean(table, "aim_prefix", "[framing]"), max_frame)


HIDPOS_FEEDBACK: Final = ("good_read", "bad_read", "duplicate_read")
"""Keys of ``[hidpos]`` holding output reports."""
HIDPOS_LAYOUT_KEYS: Final = hidpos.FIELDS
"""Keys of ``[hidpos]`` giving input report layout fields (:class:`drivers.hidpos.HidPosLayout`)."""


def _layout_field(ctx: _Ctx, table: Mapping[str, Any], key: str) -> int | None:
    """One layout key: an integer in range, or ``false`` (absent) where the field may be."""
    name = f"[hidpos].{key}"
    value = table[key]
    if value is False and key in hidpos.OPTIONAL_FIELDS:
        return None
    top = hidpos.MAX_REPORT_SIZE
    low, high = {
        "report_size": (1, top),
        "report_id": (1, 0xFF),
        "continuation_mask": (1, 0xFF),
        "data_size": (1, top),
    }.get(key, (0, top - 1))
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        absent = " or false (none)" if key in hidpos.OPTIONAL_FIELDS else ""
        raise ctx.fail(name, f"expected an integer in {low}..{high}{absent}, got {value!r}")
    return value


def _layout_error(
    ctx: _Ctx, exc: hidpos.LayoutError, name: str | None, fields: Mapping[str, int | None]
) -> ProfileError:
    """Name the ``[hidpos]`` key the profile set that takes part in the problem."""
    if name is None and exc.field not in fields:
        return ctx.fail(
            f"[hidpos].{exc.field}",
            "missing required key (without 'layout', [hidpos] must give every one of "
            f"{list(hidpos.REQUIRED_FIELDS)}; 'continuation_mask' defaults to 0x01)",
        )
    key = next((k for k in (exc.field, *exc.others) if k in fields), None)
    if key is None:  # only the named layout's values are involved
        return ctx.fail(
            f"[hidpos].{exc.field}",
            f"{exc.message} (value from layout {name!r}: set [hidpos].{exc.field} too)",
        )
    return ctx.fail(f"[hidpos].{key}", exc.message)


def _hidpos(
    ctx: _Ctx, data: Mapping[str, Any]
) -> tuple[str | None, hidpos.HidPosLayout | None, HidPosFeedback]:
    if "hidpos" not in data:
        return None, None, HidPosFeedback()
    table = ctx.table(data, "hidpos", "[hidpos]")
    ctx.keys(table, "[hidpos]", ("layout", *HIDPOS_LAYOUT_KEYS, *HIDPOS_FEEDBACK))
    fields = {key: _layout_field(ctx, table, key) for key in HIDPOS_LAYOUT_KEYS if key in table}
    name = None
    if "layout" in table or not fields:
        name = ctx.required(table, "layout", "[hidpos]")
        if name not in hidpos.LAYOUTS:
            raise ctx.fail(
                "[hidpos].layout", f"expected one of {sorted(hidpos.LAYOUTS)}, got {name!r}"
            )
    try:
        layout = hidpos.resolve_layout(hidpos.LAYOUTS[name] if name else None, fields)
    except hidpos.LayoutError as exc:
        raise _layout_error(ctx, exc, name, fields) from None
    reports: dict[str, bytes] = {}
    for key in HIDPOS_FEEDBACK:
        raw = ctx.string(table, key, "[hidpos]")
        if raw is not None:
            reports[key] = _to_bytes(ctx, raw, f"[hidpos].{key}")
    return name, layout, HidPosFeedback(**reports)


def _commands(ctx: _Ctx, data: Mapping[str, Any]) -> CommandSet:
    table = ctx.table(data, "commands", "[commands]")
    ctx.keys(table, "[commands]", COMMAND_NAMES)
    values = {
        key: _command(ctx, table[key], f"[commands].{key}") for key in COMMAND_NAMES if key in table
    }
    return CommandSet(**values)


def _quirks(ctx: _Ctx, data: Mapping[str, Any]) -> Quirks:
    table = ctx.table(data, "quirks", "[quirks]")
    ctx.keys(table, "[quirks]", ("modemmanager_probes", "notes"))
    notes = table.get("notes", "")
    if not isinstance(notes, str):
        raise ctx.fail("[quirks].notes", f"expected a string, got {notes!r}")
    return Quirks(ctx.boolean(table, "modemmanager_probes", "[quirks]"), notes)


def parse_profile(stem: str, text: str, *, source: str = "") -> Profile:
    """Validate the TOML ``text`` of the profile named ``stem`` (no file access)."""
    ctx = _Ctx(f"{stem}.toml")
    if not _STEM.match(stem):
        raise ctx.fail("id", f"expected lower-case letters, digits and '-', got {stem!r}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ctx.fail("toml", str(exc)) from None
    ctx.keys(data, "", ("profile", "usb", "serial", "framing", "hidpos", "commands", "quirks"))
    if "profile" not in data:
        raise ctx.fail("[profile]", "missing required table")
    head = ctx.table(data, "profile", "[profile]")
    ctx.keys(head, "[profile]", ("vendor", "model", "interfaces"))
    vendor = ctx.required(head, "vendor", "[profile]")
    model = ctx.required(head, "model", "[profile]")
    interfaces = head.get("interfaces")
    if (
        not isinstance(interfaces, list)
        or not interfaces
        or any(i not in INTERFACES for i in interfaces)
        or len(set(interfaces)) != len(interfaces)
    ):
        raise ctx.fail(
            "[profile].interfaces",
            f"expected a non-empty list of distinct values from {list(INTERFACES)}, "
            f"got {interfaces!r}",
        )
    layout, report_layout, feedback = _hidpos(ctx, data)
    return Profile(
        id=stem,
        vendor=vendor,
        model=model,
        interfaces=tuple(interfaces),
        usb_ids=_usb(ctx, data, tuple(interfaces)),
        serial=_serial(ctx, data),
        framing=_framing(ctx, data),
        hidpos_layout=layout,
        hidpos_report_layout=report_layout,
        hidpos_feedback=feedback,
        commands=_commands(ctx, data),
        quirks=_quirks(ctx, data),
        source=source,
    )


# --- discovery and loading ----------------------------------------------------


def _sources(extra_dirs: Iterable[Path | str]) -> dict[str, Traversable | Path]:
    """Profile files by stem; later directories override earlier ones."""
    found: dict[str, Traversable | Path] = {}
    for entry in resources.files(PACKAGE).iterdir():
        if entry.is_file() and entry.name.endswith(".toml"):
            found[entry.name[: -len(".toml")]] = entry
    for directory in extra_dirs:
        path = Path(directory)
        if not path.is_dir():
            continue
        for file in sorted(path.glob("*.toml")):
            found[file.stem] = file
    return found


def list_profiles(extra_dirs: Iterable[Path | str] = ()) -> list[str]:
    """Ids (file stems) of all available profiles, sorted."""
    return sorted(_sources(extra_dirs))


def load_profile(stem: str, extra_dirs: Iterable[Path | str] = ()) -> Profile:
    """Load and validate one profile; raises :class:`ProfileError`."""
    sources = _sources(extra_dirs)
    if stem not in sources:
        raise ProfileError(
            f"Failed to load profile {stem + '.toml'!r}: no such profile "
            f"(expected one of {sorted(sources)})"
        )
    return _load(stem, sources[stem])


def _load(stem: str, entry: Traversable | Path) -> Profile:
    try:
        text = entry.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"Failed to load profile {stem + '.toml'!r}: {exc}") from exc
    return parse_profile(stem, text, source=str(entry))


def _each(
    extra_dirs: Iterable[Path | str], on_error: Callable[[ProfileError], None]
) -> list[Profile]:
    profiles: list[Profile] = []
    for stem, entry in sorted(_sources(extra_dirs).items()):
        try:
            profiles.append(_load(stem, entry))
        except ProfileError as exc:
            on_error(exc)
    return profiles


def load_all(extra_dirs: Iterable[Path | str] = ()) -> list[Profile]:
    """Every valid profile, sorted by id (invalid ones are skipped; see :func:`validate_all`)."""
    return _each(extra_dirs, lambda _exc: None)


def validate_all(extra_dirs: Iterable[Path | str] = ()) -> list[str]:
    """Load every profile; return one error message per invalid profile."""
    errors: list[str] = []
    _each(extra_dirs, lambda exc: errors.append(str(exc)))
    return errors


def match_usb(
    vid: int, pid: int, extra_dirs: Iterable[Path | str] = ()
) -> list[tuple[Profile, str]]:
    """Profiles (and the USB mode) whose ``[[usb.ids]]`` list ``vid:pid``.

    More than one match means the IDs are shared (a vendor's generic product
    ID); the caller decides, e.g. by asking the operator.
    """
    return [
        (profile, usb_id.mode)
        for profile in load_all(extra_dirs)
        for usb_id in profile.usb_ids
        if (usb_id.vid, usb_id.pid) == (vid, pid)
    ]
