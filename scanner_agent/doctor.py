"""``scanner-agent doctor``: is this box ready to scan and sync?  One line per check.

Each check returns a :class:`Check` with a status (``ok``, ``warn``, ``fail``,
``skip``), what it saw, and for anything not ok a fix hint.  The checks, in
order:

* ``config``: the file loads and validates.
* ``service user``: the ``scanner-agent`` user exists (install creates it).
* ``outbox``: the file passes ``PRAGMA quick_check`` (opened read-only), or its
  directory is there and writable for the agent to create it.
* ``disk space``: free space above the reserve (``outbox.min_free_mb``).
* ``device <path>``: each configured device path exists and the service user
  (else the current user) may read and write it.
* ``discovery``: serial ports, HID and input devices, cameras found now.
* ``profile <id>``: each hardware source's profile loads and an attached device
  matches its USB ids; every site profile is valid.
* The service of ``sync.protocol`` and its credential:

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

The library never prints; ``scanner_agent.cli_ops`` renders the report and
exits non-zero when any check failed.
"""

from __future__ import annotations

import dataclasses
import enum
import grp
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from scanner_agent import logs
from scanner_agent.config import DEFAULT_CONFIG_PATH, AgentConfig, load_config
from scanner_agent.errors import CredentialError, ScannerAgentError
from scanner_agent.install import SERVICE_USER
from scanner_agent.outbox import check_file
from scanner_agent.preflight import Refusal, RunAs, check_outbox, lexists

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
    yield _ok("config", f"{opts.config_path}: {len(cfg.sources)} sources, device {cfg.device_id}")
    service = RunAs.service(opts.service_user)
    user = service or RunAs.me()
    yield _service_user_check(opts.service_user, service)
    stages: list[tuple[str, Callable[[], Iterator[Check]]]] = [
        ("outbox", lambda: _outbox_checks(cfg, user)),
        ("devices", lambda: _device_checks(cfg, user)),
        ("discovery", lambda: _discovery_checks(cfg, opts)),
    ]
    if not cfg.sync.enabled:
        for name in _service_check_names(cfg):
            yield Check(name, Status.SKIP, "sync.enabled = false")
    elif cfg.sync.protocol == "alihealth":
        stages.append((_service_check_names(cfg)[1], lambda: _alihealth_checks(cfg, opts, user)))
    elif cfg.sync.protocol == "epcis":
        stages.append((_service_check_names(cfg)[1], lambda: _epcis_checks(cfg, opts, user)))
    else:
        stages.append(("trace service", lambda: _service_checks(cfg, opts, user)))
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
    return (
        "fix the key named above (`scanner-agent check-config -c FILE`); "
        "the installed default is /etc/scanner-agent/agent.toml"
    )


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
            f"create it for the service: `sudo install -d -o {SERVICE_USER} -m 0750 {directory}` "
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
            "check its owner and mode" if readable else _access_hint(path),
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
            f"`sudo chown {SERVICE_USER}: {path}*`",
        )
    owing = f", {found.owed} scans not yet delivered" if found.owed is not None else ""
    return _ok("outbox", f"{path}: integrity ok{owing}")


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
    from drivers.discovery import discover
    from drivers.registry import HARDWARE_TYPES, resolve_options
    from scanner_agent import profiles

    dirs = list(opts.profile_dirs) or [profiles.SITE_PROFILE_DIR]
    found = discover(opts.sysfs, dev=opts.dev, comports=opts.comports, profile_dirs=dirs)
    hardware = [s for s in cfg.sources if s.type in HARDWARE_TYPES]
    known = [d for d in found.all() if d.profiles]
    summary = (
        f"{len(found.serial)} serial ports, {len(found.hid)} HID, {len(found.input)} input, "
        f"{len(found.cameras)} cameras; {len(known)} match a profile"
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
        profile_id = str(resolve_options(src, f"source[{i}]").get("profile") or "")
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


# -- the trace service -------------------------------------------------------------------


def _service_checks(cfg: AgentConfig, opts: Options, user: RunAs) -> Iterator[Check]:
    import httpx

    from scanner_agent.sync import build_ssl_context

    sc = cfg.sync
    token_check, token = _credential("token", sc.token_file, sc.token_env, sc.read_token, user)
    if token_check is not None and not token:
        yield token_check
        return
    try:
        verify = build_ssl_context(cfg.sync)
    except ScannerAgentError as exc:
        yield Check(
            "trace service",
            Status.FAIL,
            str(exc),
            "fix sync.ca_bundle, sync.client_cert and sync.client_key (PEM files)",
        )
        return
    url = cfg.sync.url.rstrip("/")
    with httpx.Client(
        base_url=url, timeout=HTTP_TIMEOUT_S, verify=verify, transport=opts.transport
    ) as client:
        try:
            health = client.get("/v1/health")
        except httpx.HTTPError as exc:
            yield Check(
                "trace service",
                Status.FAIL,
                f"{url}: {type(exc).__name__}: {exc}",
                "check sync.url, the network and firewall, and TLS (sync.ca_bundle)",
            )
            yield Check("token", Status.SKIP, "service unreachable")
            yield Check("clock", Status.SKIP, "service unreachable")
            return
        if health.status_code == 200:
            yield _ok("trace service", f"{url}/v1/health: 200")
        else:
            yield Check(
                "trace service",
                Status.FAIL,
                f"{url}/v1/health: {health.status_code}",
                "the service is up but unhealthy, or sync.url points at something else",
            )
        yield _token_check(client, token, cfg)
    yield _clock_check(health.headers.get("Date"), opts.now())


def _service_check_names(cfg: AgentConfig) -> tuple[str, str, str]:
    """The names of the service, credential and clock checks for ``sync.protocol``."""
    if cfg.sync.protocol == "alihealth":
        return ("app secret", ALIHEALTH_CHECK, "clock")
    if cfg.sync.protocol == "epcis":
        return ("token", EPCIS_CHECK, "clock")
    return ("trace service", "token", "clock")


ALIHEALTH_CHECK = "码上放心 gateway"
EPCIS_CHECK = "EPCIS repository"


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
            f"`sudo chgrp {SERVICE_USER} {path}` and `sudo chmod 0640 {path}`",
        ), ""
    where = f"{path}: readable by {user.name}, not by everyone" if path else f"from ${env}"
    return _ok(name, where), value


def _credential_failure(name: str, exc: CredentialError, path: str, user: RunAs) -> Check:
    """A refused credential, with the hint for what is wrong with it."""
    install = (
        f"`sudo install -m 0640 -o root -g {SERVICE_USER} /dev/stdin "
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
        "unreadable": f"`sudo chgrp {SERVICE_USER} {path}` and `sudo chmod 0640 {path}`",
        "not_file": f"point the key at the file holding the secret, or replace {path} by one: "
        f"{install}",
        "too_open": f"`sudo chmod o-rwx {path}` (mode 0640, group {SERVICE_USER})",
        "malformed": f"write it again as one line of printable ASCII, nothing around it: {install}",
        "unset": "set it for the service: `sudo systemctl edit scanner-agent`, then "
        "[Service] Environment=NAME=value (or set the *_file key instead)",
    }
    return Check(name, Status.FAIL, str(exc), hints.get(exc.problem, ""))


def _alihealth_checks(cfg: AgentConfig, opts: Options, user: RunAs) -> Iterator[Check]:
    """The app secret file, then one signed read-only call (bill status) to the gateway."""
    import httpx

    from scanner_agent.errors import AuthError, RateLimitedError, SiteProblemError, SyncError
    from scanner_agent.sinks.alihealth import (
        GMT8,
        billstatus_method,
        billstatus_params,
        parse_top_error,
        public_params,
        sign,
    )
    from scanner_agent.sync import date_offset_s

    ali = cfg.alihealth
    checked, secret = _credential("app secret", ali.app_secret_file, "", ali.read_secret, user)
    if checked is None or not secret:
        yield checked or Check("app secret", Status.FAIL, "alihealth.app_secret_file: not set")
        yield Check(ALIHEALTH_CHECK, Status.SKIP, "no app secret to sign with")
        yield Check("clock", Status.SKIP, "no app secret to sign with")
        return
    secret_check = checked
    now = opts.now()
    today = now.astimezone(GMT8).date()
    method = billstatus_method(ali.api, ali.status_api)
    params = public_params(method, ali.app_key, cast(Any, ali.sign_method), now)
    params.update(
        billstatus_params(
            ref_ent_id=ali.ref_user_id,
            begin_date=(today - timedelta(days=1)).isoformat(),
            end_date=today.isoformat(),
        )
    )
    params["sign"] = sign(params, secret, cast(Any, ali.sign_method))
    with httpx.Client(timeout=HTTP_TIMEOUT_S, transport=opts.transport) as client:
        try:
            reply = client.post(ali.url, data=params)
        except httpx.HTTPError as exc:
            yield secret_check
            yield Check(
                ALIHEALTH_CHECK,
                Status.FAIL,
                f"{ali.url}: {type(exc).__name__}: {exc}",
                "check alihealth.url, the network and firewall",
            )
            yield Check("clock", Status.SKIP, "gateway unreachable")
            return
    date = reply.headers.get("Date")
    if reply.status_code != 200:
        yield secret_check
        yield Check(
            ALIHEALTH_CHECK,
            Status.FAIL,
            f"{ali.url}: HTTP {reply.status_code}",
            "alihealth.url should be the TOP gateway, https://eco.taobao.com/router/rest",
        )
        yield _clock_check(date, now)
        return
    try:
        data = reply.json()
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        parse_top_error(data, clock_offset_s=date_offset_s(date, now))
    except ValueError as exc:
        yield secret_check
        yield Check(
            ALIHEALTH_CHECK,
            Status.FAIL,
            f"{ali.url}: not a TOP reply ({exc})",
            "alihealth.url should be the TOP gateway, https://eco.taobao.com/router/rest",
        )
        yield _clock_check(date, now)
        return
    except AuthError as exc:
        yield Check(
            "app secret",
            Status.FAIL,
            f"the gateway refused app key {ali.app_key} or the secret in "
            f"{ali.app_secret_file}: {exc}",
            "compare alihealth.app_key, the secret and alihealth.sign_method with the 码上放心 "
            "open platform's application page, then `sudo systemctl reload scanner-agent`",
        )
        yield _ok(ALIHEALTH_CHECK, f"{ali.url}: answered (the credentials were refused)")
        yield _clock_check(date, now)
        return
    except RateLimitedError as exc:
        yield secret_check
        yield Check(ALIHEALTH_CHECK, Status.WARN, str(exc), "calls are limited now; retry later")
        yield _clock_check(date, now)
        return
    except SiteProblemError as exc:
        # The site's clock, address, permissions or app key: what it says is what to fix.
        yield secret_check
        yield Check(
            ALIHEALTH_CHECK,
            Status.FAIL,
            f"{ali.url}: {exc}",
            "the agent holds the scans until the gateway takes its calls again",
        )
        yield _clock_check(date, now)
        return
    except SyncError as exc:
        # Answered and signed right, but refused for another reason (permission, parameters).
        yield _ok("app secret", f"{secret_check.detail}; the signature was accepted")
        yield Check(
            ALIHEALTH_CHECK,
            Status.WARN,
            f"the bill status query was refused: {exc}",
            "the application may lack the bill status API; uploads will tell",
        )
        yield _clock_check(date, now)
        return
    yield _ok("app secret", f"{secret_check.detail}; the gateway accepted the signature")
    yield _ok(ALIHEALTH_CHECK, f"{ali.url}: bill status query answered")
    yield _clock_check(date, now)


def _epcis_checks(cfg: AgentConfig, opts: Options, user: RunAs) -> Iterator[Check]:
    """The token, then an authenticated ``GET /capture`` (the capture job list)."""
    import httpx

    from scanner_agent.sync import build_ssl_context

    ep = cfg.epcis
    token_check, token = _credential("token", ep.token_file, ep.token_env, ep.read_token, user)
    if token_check is not None and not token:
        yield token_check
        yield Check(EPCIS_CHECK, Status.SKIP, "no token")
        yield Check("clock", Status.SKIP, "no token")
        return
    try:
        verify = build_ssl_context(cfg.sync)
    except ScannerAgentError as exc:
        yield Check(EPCIS_CHECK, Status.FAIL, str(exc), "fix sync.ca_bundle / client_cert")
        return
    url = ep.url.rstrip("/")
    headers = {"Accept": "application/json", "GS1-EPCIS-Version": "2.0.0"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(timeout=HTTP_TIMEOUT_S, verify=verify, transport=opts.transport) as client:
        try:
            reply = client.get(f"{url}/capture", headers=headers)
        except httpx.HTTPError as exc:
            yield token_check or Check("token", Status.WARN, "no token configured")
            yield Check(
                EPCIS_CHECK,
                Status.FAIL,
                f"{url}: {type(exc).__name__}: {exc}",
                "check epcis.url, the network and firewall, and TLS (sync.ca_bundle)",
            )
            yield Check("clock", Status.SKIP, "repository unreachable")
            return
    status = reply.status_code
    where = f"epcis.token_file ({ep.token_file})" if ep.token_file else f"${ep.token_env}"
    if status in (401, 403):
        yield Check(
            "token",
            Status.FAIL,
            f"the repository refused the token from {where} ({status})"
            if token
            else f"the repository wants a token ({status}); none is configured",
            "get a valid token from the repository's operator, put it in epcis.token_file, "
            "then `sudo systemctl reload scanner-agent`",
        )
        yield _ok(EPCIS_CHECK, f"{url}/capture: answered {status}")
    elif status >= 500:
        yield token_check or Check("token", Status.WARN, "no token configured")
        yield Check(
            EPCIS_CHECK,
            Status.FAIL,
            f"{url}/capture: {status}",
            "the repository is up but failing; ask its operator",
        )
    else:
        if token_check is None:
            yield Check(
                "token",
                Status.WARN,
                "no token configured (epcis.token_file / token_env); the repository did not ask",
                "set one if the repository expects it",
            )
        elif status == 200:
            yield _ok("token", f"{token_check.detail}; accepted")
        else:
            yield Check(
                "token",
                Status.WARN,
                f"{token_check.detail}; GET /capture answered {status}, the token was not refused",
                "the repository may not list capture jobs; captures will tell",
            )
        yield _ok(EPCIS_CHECK, f"{url}/capture: {status}")
    yield _clock_check(reply.headers.get("Date"), opts.now())


def _token_check(client: Any, token: str, cfg: AgentConfig) -> Check:
    import httpx

    if not token:
        return Check(
            "token",
            Status.FAIL,
            "no token configured (sync.token_file / sync.token_env)",
            "put the token in /etc/scanner-agent/token (mode 0640, group scanner-agent) "
            "and set sync.token_file",
        )
    try:
        reply = client.get(
            "/v1/events", params={"limit": 1}, headers={"Authorization": f"Bearer {token}"}
        )
    except httpx.HTTPError as exc:
        return Check("token", Status.FAIL, f"{type(exc).__name__}: {exc}", "retry; check the link")
    where = cfg.sync.token_file or f"${cfg.sync.token_env}"
    if reply.status_code in (401, 403):
        return Check(
            "token",
            Status.FAIL,
            f"the service refused the token from {where} ({reply.status_code})",
            "get a valid token for this device from the trace service's operator, "
            "then `sudo systemctl reload scanner-agent`",
        )
    if reply.status_code >= 400:
        return Check(
            "token",
            Status.WARN,
            f"GET /v1/events answered {reply.status_code}; the token was not refused",
            "the service may not offer /v1/events; batches will tell",
        )
    return _ok("token", f"accepted (token from {where})")


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
