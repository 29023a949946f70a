"""``scanner-agent doctor``: is this box ready to scan and sync?  One line per check.

Each check returns a :class:`Check` with a status (``ok``, ``warn``, ``fail``,
``skip``), what it saw, and for anything not ok a fix hint.  The checks, in
order:

* ``config``: the file loads and validates.
* ``role <name>``: each role of :data:`scanner_agent.ops.roles.ROLES` (daemon, tui,
  camera, wedge, hotplug, usb, zbar) has its libraries: ok, or why not and how
  to add them; ``fail`` when a configured source needs it, ``skip`` when the
  install left it out on purpose or it is optional, else ``warn``.
* ``driver <source>``: each configured source's driver module and libraries
  load (:func:`scanner_agent.ops.roles.check_driver`, as ``check-config`` and ``run``).
* ``service user``: the ``scanner-agent`` user exists (install creates it).
* ``outbox``: the file passes ``PRAGMA quick_check`` (opened read-only), or its
  directory is there and writable for the agent to create it.
* ``disk space``: free space above the reserve (``outbox.min_free_mb``).
* ``device <path>``: each configured device path exists and the service user
  (else the current user) may read and write it.
* ``discovery``: serial ports, HID and input devices, cameras found now.
* ``profile <id>``: each hardware source's profile loads and an attached device
  matches its USB ids; every site profile is valid.
* The service of ``sync.protocol`` and its credential, checked by the sink's own
  package (``scanner_agent/sinks/<name>/_doctor.py``) with this module's rules:

  - ``trace-api``: ``trace service`` (``GET /v1/health`` answers 200) and
    ``token`` (an authenticated ``GET /v1/events?limit=1`` is not refused);
  - ``alihealth``: ``app secret`` (``alihealth.app_secret_file`` is readable by
    the service user and not by everyone) and ``码上放心 gateway`` (a signed,
    read-only bill status query is answered; a refused signature or app key
    fails the ``app secret`` check);
  - ``epcis``: ``token`` (the file is readable by the service user and not by
    everyone) and ``EPCIS repository`` (an authenticated ``GET /capture``, the
    capture job list, is answered and the token not refused).

* ``clock``: the local clock is within :data:`MAX_CLOCK_SKEW_S` of the
  service's HTTP ``Date`` header (scan times are stamped here; the 码上放心
  gateway also refuses calls more than 10 minutes off).

The library never prints; ``scanner_agent.cli.ops`` renders the report and
exits non-zero when any check failed.
"""

from __future__ import annotations

import dataclasses
import enum
import grp
import os
import shutil
import stat
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner_agent.config import DEFAULT_CONFIG_PATH, AgentConfig, load_config
from scanner_agent.kernel import CredentialError, ScannerAgentError, plural
from scanner_agent.ops import logs
from scanner_agent.ops.layout import SERVICE_USER
from scanner_agent.ops.preflight import Refusal, RunAs, check_outbox, lexists
from scanner_agent.outbox import check_file

if TYPE_CHECKING:
    from scanner_agent.sinks import Finding, SinkPackage

MAX_CLOCK_SKEW_S = 120.0
"""More skew than this between here and the trace service is a failure."""
HTTP_TIMEOUT_S = 5.0
DEVICE_OPTIONS = ("port", "device")
"""Source options that may name a device node (an absolute path; ``loop://`` URLs are not)."""


class Status(enum.StrEnum):
    """The verdict of one check."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    name: str
    status: Status
    detail: str
    hint: str = ""
    """What to do about it (empty when ok)."""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "hint": self.hint,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """Every check, in order."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return all(c.status is not Status.FAIL for c in self.checks)

    def by_name(self, name: str) -> Check:
        """The check called ``name`` (tests and tools)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "checks": [c.to_dict() for c in self.checks]}


def _ok(name: str, detail: str) -> Check:
    return Check(name, Status.OK, detail)


@dataclass(frozen=True)
class Options:
    """Where doctor looks; every default is the live system's, tests point them elsewhere."""

    config_path: Path = DEFAULT_CONFIG_PATH
    service_user: str = SERVICE_USER
    sysfs: Path = Path("/sys")
    dev: Path = Path("/dev")
    comports: Callable[[], Iterable[Any]] | None = None
    """Replaces pyserial's port listing (tests)."""
    profile_dirs: tuple[Path, ...] = field(default_factory=tuple)
    """Site profile directories (default: ``/etc/scanner-agent/profiles``)."""
    transport: Any = None
    """An ``httpx.BaseTransport`` for the HTTP checks (tests)."""
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def run_doctor(options: Options | None = None) -> Report:
    """Run every check (see the module docstring).

    Never raises for what it finds: a check that fails unexpectedly (a path
    this user may not look at, a bug) becomes a failed line naming the path
    or the error, never a traceback; every line is redacted like a log line.
    """
    opts = options or Options()
    redact = logs.redactor().redact
    return Report(
        tuple(
            dataclasses.replace(c, detail=redact(c.detail), hint=redact(c.hint))
            for c in _checks(opts)
        )
    )


def _checks(opts: Options) -> Iterator[Check]:
    try:
        cfg = load_config(opts.config_path)
    except ScannerAgentError as exc:
        yield Check("config", Status.FAIL, str(exc), _config_hint(exc, opts.config_path))
        return
    sources = plural(len(cfg.sources), "source")
    yield _ok("config", f"{opts.config_path}: {sources}, device {cfg.device_id}")
    service = RunAs.service(opts.service_user)
    user = service or RunAs.me()
    yield _service_user_check(opts.service_user, service)
    stages: list[tuple[str, Callable[[], Iterator[Check]]]] = [
        ("roles", lambda: _role_checks(cfg)),
        ("drivers", lambda: _driver_checks(cfg)),
        ("outbox", lambda: _outbox_checks(cfg, user)),
        ("devices", lambda: _device_checks(cfg, user)),
        ("discovery", lambda: _discovery_checks(cfg, opts)),
    ]
    # The sink's package is imported here, and only the one configured (with httpx).
    from scanner_agent.sinks import sink_package

    package = sink_package(cfg.sync.protocol)
    if not cfg.sync.enabled:
        for name in package.CHECK_NAMES:
            yield Check(name, Status.SKIP, "sync.enabled = false")
    else:
        stages.append((package.SERVICE_CHECK, lambda: _sink_checks(cfg, package, opts, user)))
    for name, stage in stages:
        yield from _isolated(name, stage)


def _isolated(name: str, stage: Callable[[], Iterator[Check]]) -> Iterator[Check]:
    """``stage``'s checks; an error it did not expect ends it with one failed line."""
    try:
        yield from stage()
    except PermissionError as exc:
        path = Path(exc.filename) if exc.filename else None
        where = f" {path}" if path else ""
        yield Check(
            name,
            Status.FAIL,
            f"{RunAs.me().name} may not look at{where}: {exc.strerror}",
            _access_hint(path) if path else _SUDO,
        )
    except Exception as exc:
        yield Check(
            name,
            Status.FAIL,
            f"the check itself failed: {type(exc).__name__}: {exc}",
            "please report this with the output of `scanner-agent doctor --json`",
        )


_SUDO = "run it as root: `sudo scanner-agent doctor`"


def _access_hint(path: Path) -> str:
    """How whoever runs doctor gets to read ``path``: sudo, or the group whose bits allow it."""
    me = RunAs.me()
    blocked = path
    for step in [*reversed(path.absolute().parents), path]:
        want = os.X_OK if step != path else os.R_OK
        if not me.may(step, want):
            blocked = step
            break
    try:
        st = blocked.stat()
    except OSError:
        return _SUDO
    need = stat.S_IRGRP if blocked == path else stat.S_IXGRP
    if st.st_mode & need and st.st_gid not in me.gids:
        group = _group_name(st.st_gid)
        return (
            f"{_SUDO}, or join group {group}, which may read it "
            f"(`sudo usermod -aG {group} {me.name}`, then log in again)"
        )
    return f"{_SUDO} ({blocked} is closed to {me.name})"


def _config_hint(exc: ScannerAgentError, path: Path) -> str:
    """What to do about a config that did not load: access, a missing file, or a bad key."""
    cause = exc.__cause__
    if isinstance(cause, PermissionError):
        return _access_hint(path)
    if isinstance(cause, FileNotFoundError):
        return (
            "install puts a commented default in /etc/scanner-agent/agent.toml "
            "(`sudo make install`), or pass another file with -c FILE"
        )
    if isinstance(cause, IsADirectoryError):
        return f"-c names a directory: pass the config file itself, e.g. -c {path / 'agent.toml'}"
    if isinstance(cause, UnicodeDecodeError):
        return "the file is not UTF-8 text: save it as UTF-8 (TOML files are UTF-8)"
    if isinstance(cause, tomllib.TOMLDecodeError):
        return (
            "fix the TOML syntax at the line and column named above "
            "(`scanner-agent check-config -c FILE` checks it again)"
        )
    if isinstance(cause, OSError):
        return f"the file cannot be read ({cause.strerror}); pass a readable file with -c FILE"
    return (
        "fix the key named above (`scanner-agent check-config -c FILE`); "
        "the installed default is /etc/scanner-agent/agent.toml"
    )


# -- roles and drivers ---------------------------------------------------------------


def _role_checks(cfg: AgentConfig) -> Iterator[Check]:
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
            yield _ok(name, role.what)
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


def _driver_checks(cfg: AgentConfig) -> Iterator[Check]:
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
        yield _ok(name, f"{label}: the {src.type} driver and its libraries load")


# -- users and permissions ----------------------------------------------------------


def _service_user_check(name: str, service: RunAs | None) -> Check:
    if service is None:
        return Check(
            "service user",
            Status.WARN,
            f"no user {name!r}; checking access as {RunAs.me().name} instead",
            "install creates it: `sudo make install` (or systemd-sysusers scanner-agent.conf)",
        )
    return _ok("service user", f"{name} (uid {service.uid})")


# -- outbox ----------------------------------------------------------------------


def _outbox_checks(cfg: AgentConfig, user: RunAs) -> Iterator[Check]:
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
            yield _ok("outbox", f"{path} not created yet (the agent creates it on start)")
        else:
            yield _outbox_integrity(path, user)
    try:
        yield _disk_space(directory, cfg.outbox.min_free_mb)
    except OSError as exc:
        yield Check(
            "disk space",
            Status.SKIP,
            f"{RunAs.me().name} may not look at {directory}: {exc.strerror}",
            _access_hint(directory),
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
            _open_error_hint(found.open_error) if readable else _access_hint(path),
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
    return _ok("outbox", f"{path}: integrity ok{owing}")


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
    return _ok("disk space", detail)


# -- devices and profiles --------------------------------------------------------------


def _device_paths(cfg: AgentConfig) -> list[tuple[str, Path]]:
    out = []
    for i, src in enumerate(cfg.sources):
        for key in DEVICE_OPTIONS:
            value = src.options.get(key)
            if isinstance(value, str) and value.startswith("/"):
                out.append((src.name or f"source[{i}]", Path(value)))
    return out


def _device_checks(cfg: AgentConfig, user: RunAs) -> Iterator[Check]:
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
            yield _ok(name, f"{source}: readable and writable by {user.name}")
            continue
        st = path.stat()
        group = _group_name(st.st_gid)
        yield Check(
            name,
            Status.FAIL,
            f"{source}: {user.name} cannot read and write {path} "
            f"(mode {stat.filemode(st.st_mode)}, group {group})",
            "install the udev rules (`sudo make install`) and re-plug, or add a site profile "
            "with the scanner's USB ids and run `scanner-agent install` again",
        )


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _discovery_checks(cfg: AgentConfig, opts: Options) -> Iterator[Check]:
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
        yield _ok("discovery", summary)
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
            yield _ok(name, f"source[{i}]: {profile.vendor} {profile.model} (no USB ids to match)")
            continue
        matches = [d.path for d in found.all() if (d.vid, d.pid) in ids]
        if matches:
            yield _ok(name, f"source[{i}]: attached as {', '.join(matches)}")
        else:
            yield Check(
                name,
                Status.WARN,
                f"source[{i}]: no attached device has the USB ids of {profile.vendor} {profile.model}",
                "plug it in, or check its USB mode (CDC, HID POS, keyboard) matches the source type",
            )


# -- the sink's service -------------------------------------------------------------------


def _sink_checks(
    cfg: AgentConfig, package: SinkPackage, opts: Options, user: RunAs
) -> Iterator[Check]:
    """The sink's own checks (its package's ``_doctor.py``), with this module's rules."""
    for found in package.checks(cfg, _Kit(opts, user)):
        yield Check(found.name, Status(found.status), found.detail, found.hint)


class _Kit:
    """What a sink's checks borrow from doctor (:class:`scanner_agent.sinks.DoctorKit`)."""

    timeout_s = HTTP_TIMEOUT_S

    def __init__(self, opts: Options, user: RunAs) -> None:
        self.transport = opts.transport
        self.now = opts.now
        self._user = user

    def credential(
        self, name: str, path: str, env: str, read: Callable[[], str]
    ) -> tuple[Finding | None, str]:
        check, value = _credential(name, path, env, read, self._user)
        return (None if check is None else _finding(check)), value

    def clock(self, date_header: str | None, now: datetime) -> Finding:
        return _finding(_clock_check(date_header, now))


def _finding(check: Check) -> Finding:
    from scanner_agent.sinks import Finding

    return Finding(check.name, check.status.value, check.detail, check.hint)


def _credential(
    name: str, path: str, env: str, read: Callable[[], str], user: RunAs
) -> tuple[Check | None, str]:
    """The credential's line and, when it is fine, its value (None: none configured).

    Read with the agent's own reader (:func:`scanner_agent.config.read_token`),
    so doctor refuses exactly what ``run`` refuses; the value is registered for
    redaction and never appears in a line.  A file the service user may read but
    whoever runs doctor may not is a warning with the way to look (sudo, or the
    group), not a failure of the set-up.
    """
    try:
        value = read()
    except CredentialError as exc:
        return _credential_failure(name, exc, path, user), ""
    if not value:
        return None, ""
    logs.add_secret(value)
    if path and not user.may(Path(path), os.R_OK):
        return Check(
            name,
            Status.FAIL,
            f"{user.name} cannot read {path}",
            f"`sudo chgrp {user.group} {path}` and `sudo chmod 0640 {path}`",
        ), ""
    where = f"{path}: readable by {user.name}, not by everyone" if path else f"from ${env}"
    return _ok(name, where), value


def _credential_failure(name: str, exc: CredentialError, path: str, user: RunAs) -> Check:
    """A refused credential, with the hint for what is wrong with it."""
    install = (
        f"`sudo install -m 0640 -o root -g {user.group} /dev/stdin "
        f"{path or '/etc/scanner-agent/token'}`, type it and press Ctrl-D"
    )
    if exc.problem == "unreadable" and path and user.may(Path(path), os.R_OK):
        return Check(
            name,
            Status.WARN,
            f"{user.name} may read {path}, but {RunAs.me().name} may not, so it was not checked",
            _access_hint(Path(path)),
        )
    hints = {
        "missing": f"create it: {install}",
        "unreadable": f"`sudo chgrp {user.group} {path}` and `sudo chmod 0640 {path}`",
        "not_file": f"point the key at the file holding the secret, or replace {path} by one: "
        f"{install}",
        "too_open": f"`sudo chmod o-rwx {path}` (mode 0640, group {user.group})",
        "malformed": f"write it again as one line of printable ASCII, nothing around it: {install}",
        "unset": "set it for the service: `sudo systemctl edit scanner-agent`, then "
        "[Service] Environment=NAME=value (or set the *_file key instead)",
    }
    return Check(name, Status.FAIL, str(exc), hints.get(exc.problem, ""))


def _clock_check(date_header: str | None, now: datetime) -> Check:
    from scanner_agent.sync import date_offset_s  # with httpx, loaded only for a call

    if not date_header:
        return Check("clock", Status.SKIP, "the service sent no Date header")
    skew = date_offset_s(date_header, now)
    if skew is None:
        return Check("clock", Status.SKIP, f"unreadable Date header {date_header!r}")
    detail = f"local clock {skew:+.0f} s from the trace service"
    if abs(skew) > MAX_CLOCK_SKEW_S:
        return Check(
            "clock",
            Status.FAIL,
            detail + f" (more than {MAX_CLOCK_SKEW_S:.0f} s): scan times would be wrong",
            "turn on time sync: `sudo timedatectl set-ntp true` (check `timedatectl status`)",
        )
    return _ok("clock", detail)
