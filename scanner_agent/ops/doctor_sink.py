"""``doctor``'s checks of the sync service: the sink's own (its package's ``_doctor.py``),
given what they borrow from doctor (credentials read as ``run`` reads them, the clock)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from scanner_agent.kernel import CredentialError
from scanner_agent.ops import logs
from scanner_agent.ops.doctor_report import Check, Options, Status, access_hint, ok
from scanner_agent.ops.preflight import RunAs

if TYPE_CHECKING:
    from scanner_agent.config import AgentConfig
    from scanner_agent.sinks import Finding, SinkPackage

MAX_CLOCK_SKEW_S = 120.0
"""More skew than this between here and the trace service is a failure."""
HTTP_TIMEOUT_S = 5.0


def sink_checks(
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
    return ok(name, where), value


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
            access_hint(Path(path)),
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
    return ok("clock", detail)
