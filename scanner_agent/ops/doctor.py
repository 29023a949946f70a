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
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

from scanner_agent.config import load_config
from scanner_agent.kernel import ScannerAgentError, plural
from scanner_agent.ops import logs
from scanner_agent.ops.doctor_host import (
    device_checks,
    discovery_checks,
    driver_checks,
    outbox_checks,
    role_checks,
)
from scanner_agent.ops.doctor_report import (
    SUDO,
    Check,
    Options,
    Report,
    Status,
    access_hint,
    ok,
)
from scanner_agent.ops.doctor_sink import MAX_CLOCK_SKEW_S, sink_checks
from scanner_agent.ops.preflight import RunAs

__all__ = ["MAX_CLOCK_SKEW_S", "Check", "Options", "Report", "Status", "run_doctor"]


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
    yield ok("config", f"{opts.config_path}: {sources}, device {cfg.device_id}")
    service = RunAs.service(opts.service_user)
    user = service or RunAs.me()
    yield _service_user_check(opts.service_user, service)
    stages: list[tuple[str, Callable[[], Iterator[Check]]]] = [
        ("roles", lambda: role_checks(cfg)),
        ("drivers", lambda: driver_checks(cfg)),
        ("outbox", lambda: outbox_checks(cfg, user)),
        ("devices", lambda: device_checks(cfg, user)),
        ("discovery", lambda: discovery_checks(cfg, opts)),
    ]
    # The sink's package is imported here, and only the one configured (with httpx).
    from scanner_agent.sinks import sink_package

    package = sink_package(cfg.sync.protocol)
    if not cfg.sync.enabled:
        for name in package.CHECK_NAMES:
            yield Check(name, Status.SKIP, "sync.enabled = false")
    else:
        stages.append((package.SERVICE_CHECK, lambda: sink_checks(cfg, package, opts, user)))
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
            access_hint(path) if path else SUDO,
        )
    except Exception as exc:
        yield Check(
            name,
            Status.FAIL,
            f"the check itself failed: {type(exc).__name__}: {exc}",
            "please report this with the output of `scanner-agent doctor --json`",
        )


def _service_user_check(name: str, service: RunAs | None) -> Check:
    if service is None:
        return Check(
            "service user",
            Status.WARN,
            f"no user {name!r}; checking access as {RunAs.me().name} instead",
            "install creates it: `sudo make install` (or systemd-sysusers scanner-agent.conf)",
        )
    return ok("service user", f"{name} (uid {service.uid})")


def _config_hint(exc: ScannerAgentError, path: Path) -> str:
    """What to do about a config that did not load: access, a missing file, or a bad key."""
    cause = exc.__cause__
    if isinstance(cause, PermissionError):
        return access_hint(path)
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
