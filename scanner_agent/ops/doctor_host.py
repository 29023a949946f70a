"""``doctor``'s checks of this box: roles and drivers, the outbox and disk space, device
nodes, what is attached now and the profiles that should match it."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from scanner_agent.kernel import ScannerAgentError, plural
from scanner_agent.ops.doctor_report import Check, Options, Status, access_hint, group_name, ok
from scanner_agent.ops.preflight import Refusal, RunAs, check_outbox, lexists
from scanner_agent.outbox import check_file

if TYPE_CHECKING:
    from scanner_agent.config import AgentConfig

DEVICE_OPTIONS = ("port", "device")
"""Source options that may name a device node (an absolute path; ``loop://`` URLs are not)."""


def role_checks(cfg: AgentConfig) -> Iterator[Check]:
    from drivers.registry import SOURCE_TYPES, resolve_options
    from scanner_agent.ops.roles import ROLES, install_info, role_hint, role_problem

    needed: dict[str, str] = {}
    for i, src in enumerate(cfg.sources):
        try:
            options = resolve_options(src.type, src.options, f"source[{i}]")
        except ScannerAgentError:
            continue  # the driver check reports it
        for name in SOURCE_TYPES[src.type].needs(options):
            needed.setdefault(name, f"source[{i}]")
    info = install_info()
    for role in ROLES:
        name = f"role {role.name}"
        problem = role_problem(role.name)
        if problem is None:
            yield ok(name, role.what)
            continue
        detail = f"unavailable: {role.what} ({problem})"
        if role.name in needed:
            yield Check(
                name, Status.FAIL, f"{detail}; {needed[role.name]} needs it", role_hint(role.name)
            )
        elif role.optional:
            yield Check(
                name,
                Status.SKIP,
                f"{detail}; optional, no source asks for it",
                role_hint(role.name),
            )
        elif info.method != "pip" and role.extra and not info.has_extra(role.extra):
            yield Check(
                name,
                Status.SKIP,
                f"{detail}; left out of this install (extras: {','.join(info.extras) or 'none'})",
                role_hint(role.name),
            )
        else:
            yield Check(name, Status.WARN, detail, role_hint(role.name))


def driver_checks(cfg: AgentConfig) -> Iterator[Check]:
    from drivers.registry import resolve_options, source_name
    from scanner_agent.ops.roles import DriverUnavailable, check_driver

    for i, src in enumerate(cfg.sources):
        where = f"source[{i}]"
        name = f"driver {where}"
        try:
            check_driver(src.type, src.options, where)
        except DriverUnavailable as exc:
            yield Check(name, Status.FAIL, exc.detail, exc.hint)
            continue
        except ScannerAgentError as exc:
            yield Check(
                name, Status.FAIL, str(exc), "fix the key named (`scanner-agent check-config`)"
            )
            continue
        label = source_name(src.type, src.name, resolve_options(src.type, src.options, where))
        yield ok(name, f"{label}: the {src.type} driver and its libraries load")


# -- users and permissions ----------------------------------------------------------


# -- outbox ----------------------------------------------------------------------


def outbox_checks(cfg: AgentConfig, user: RunAs) -> Iterator[Check]:
    """The outbox as ``run`` checks it (:func:`check_outbox`, for the service user), then its
    integrity and the free space, read as whoever runs doctor."""
    path = Path(cfg.outbox.path)
    directory = path.parent
    if not lexists(directory):
        yield Check(
            "outbox",
            Status.FAIL,
            f"directory {directory} does not exist",
            f"create it for the service: `sudo install -d -o {user.name} -g {user.group} -m 0750 {directory}` "
            "(install's tmpfiles entry does this for /var/lib/scanner-agent)",
        )
        yield Check("disk space", Status.SKIP, "no outbox directory")
        return
    try:
        check_outbox(cfg, user)
    except Refusal as exc:
        yield Check("outbox", Status.FAIL, exc.message, exc.hint)
    else:
        if not lexists(path):
            yield ok("outbox", f"{path} not created yet (the agent creates it on start)")
        else:
            yield _outbox_integrity(path, user)
    try:
        yield _disk_space(directory, cfg.outbox.min_free_mb)
    except OSError as exc:
        yield Check(
            "disk space",
            Status.SKIP,
            f"{RunAs.me().name} may not look at {directory}: {exc.strerror}",
            access_hint(directory),
        )


def _outbox_integrity(path: Path, user: RunAs) -> Check:
    found = check_file(path)
    if found.open_error:
        readable = os.access(path, os.R_OK)
        return Check(
            "outbox",
            Status.FAIL if readable else Status.WARN,
            f"{path}: cannot open: {found.open_error}"
            if readable
            else f"{path}: {RunAs.me().name} may not read it, so its integrity was not checked",
            _open_error_hint(found.open_error) if readable else access_hint(path),
        )
    if found.problem:
        return Check(
            "outbox",
            Status.FAIL,
            f"{path} failed its integrity check: {found.problem}",
            "the agent moves a corrupt outbox aside and starts a new one on its next start; "
            "export what can be read first: `scanner-agent queue export --outbox FILE`",
        )
    if not user.may(path, os.R_OK | os.W_OK):
        return Check(
            "outbox",
            Status.FAIL,
            f"{path}: {user.name} cannot read and write it",
            f"`sudo chown {user.name}: {path}*`",
        )
    owing = f", {plural(found.owed, 'scan')} not yet delivered" if found.owed is not None else ""
    return ok("outbox", f"{path}: integrity ok{owing}")


def _open_error_hint(error: str) -> str:
    """What to do about an outbox doctor may read but SQLite cannot open."""
    if "not a database" in error or "malformed" in error:
        return (
            "it is not an intact SQLite file: on its next start the agent moves it aside "
            "(kept as <name>.corrupt-<time>) and begins a new outbox; if it was another "
            "program's file, set outbox.path elsewhere"
        )
    return "check its owner and mode"


def _disk_space(directory: Path, reserve_mb: int) -> Check:
    free_mb = shutil.disk_usage(directory).free / (1024 * 1024)
    detail = f"{free_mb:.0f} MiB free in {directory}, reserve {reserve_mb} MiB"
    if free_mb < reserve_mb:
        return Check(
            "disk space",
            Status.FAIL,
            detail + ": new scans are refused",
            "free space (old logs, `journalctl --vacuum-size=`), or lower outbox.min_free_mb",
        )
    if free_mb < 2 * reserve_mb:
        return Check("disk space", Status.WARN, detail, "free space before the reserve is hit")
    return ok("disk space", detail)


# -- devices and profiles --------------------------------------------------------------


def _device_paths(cfg: AgentConfig) -> list[tuple[str, Path]]:
    out = []
    for i, src in enumerate(cfg.sources):
        for key in DEVICE_OPTIONS:
            value = src.options.get(key)
            if isinstance(value, str) and value.startswith("/"):
                out.append((src.name or f"source[{i}]", Path(value)))
    return out


def device_checks(cfg: AgentConfig, user: RunAs) -> Iterator[Check]:
    for source, path in _device_paths(cfg):
        name = f"device {path}"
        if not path.exists():
            yield Check(
                name,
                Status.FAIL,
                f"{source}: {path} does not exist (unplugged, or another name)",
                "plug the scanner in; `scanner-agent devices` lists what is attached; "
                "prefer the stable /dev/scanner/<profile>-<serial> names",
            )
            continue
        if not (path.is_char_device() or path.is_file()):
            yield Check(name, Status.WARN, f"{source}: {path} is not a character device")
            continue
        if user.may(path, os.R_OK | os.W_OK):
            yield ok(name, f"{source}: readable and writable by {user.name}")
            continue
        st = path.stat()
        group = group_name(st.st_gid)
        yield Check(
            name,
            Status.FAIL,
            f"{source}: {user.name} cannot read and write {path} "
            f"(mode {stat.filemode(st.st_mode)}, group {group})",
            "install the udev rules (`sudo make install`) and re-plug, or add a site profile "
            "with the scanner's USB ids and run `scanner-agent install` again",
        )


def discovery_checks(cfg: AgentConfig, opts: Options) -> Iterator[Check]:
    from drivers import profiles
    from drivers.discovery import discover
    from drivers.registry import HARDWARE_TYPES, resolve_options

    dirs = list(opts.profile_dirs) or [profiles.SITE_PROFILE_DIR]
    found = discover(opts.sysfs, dev=opts.dev, comports=opts.comports, profile_dirs=dirs)
    hardware = [s for s in cfg.sources if s.type in HARDWARE_TYPES]
    known = [d for d in found.all() if d.profiles]
    summary = (
        f"{plural(len(found.serial), 'serial port')}, {len(found.hid)} HID, "
        f"{len(found.input)} input, {plural(len(found.cameras), 'camera')}; "
        f"{len(known)} with a profile"
    )
    if hardware and not found.all():
        yield Check(
            "discovery",
            Status.WARN,
            summary,
            "no device found: check cables and `dmesg`; `scanner-agent devices` lists them",
        )
    else:
        yield ok("discovery", summary)
    for error in profiles.validate_all(dirs):
        yield Check("profiles", Status.FAIL, error, "fix or remove the site profile named")
    for i, src in enumerate(cfg.sources):
        if src.type not in HARDWARE_TYPES:
            continue
        profile_id = str(
            resolve_options(src.type, src.options, f"source[{i}]").get("profile") or ""
        )
        name = f"profile {profile_id or '?'}"
        try:
            profile = profiles.load_profile(profile_id, dirs)
        except profiles.ProfileError as exc:
            yield Check(name, Status.FAIL, str(exc), "`scanner-agent profiles list` names them")
            continue
        ids = {(u.vid, u.pid) for u in profile.usb_ids}
        if not ids:
            yield ok(name, f"source[{i}]: {profile.vendor} {profile.model} (no USB ids to match)")
            continue
        matches = [d.path for d in found.all() if (d.vid, d.pid) in ids]
        if matches:
            yield ok(name, f"source[{i}]: attached as {', '.join(matches)}")
        else:
            yield Check(
                name,
                Status.WARN,
                f"source[{i}]: no attached device has the USB ids of {profile.vendor} {profile.model}",
                "plug it in, or check its USB mode (CDC, HID POS, keyboard) matches the source type",
            )
