"""``doctor``'s report: one :class:`Check` per line, the :class:`Options` of where it looks,
and the hints every check shares (how whoever runs doctor gets to read a path)."""

from __future__ import annotations

import enum
import grp
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scanner_agent.config import DEFAULT_CONFIG_PATH
from scanner_agent.ops.layout import SERVICE_USER
from scanner_agent.ops.preflight import RunAs


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


def ok(name: str, detail: str) -> Check:
    """A check that passed."""
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


SUDO = "run it as root: `sudo scanner-agent doctor`"


def access_hint(path: Path) -> str:
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
        return SUDO
    need = stat.S_IRGRP if blocked == path else stat.S_IXGRP
    if st.st_mode & need and st.st_gid not in me.gids:
        group = group_name(st.st_gid)
        return (
            f"{SUDO}, or join group {group}, which may read it "
            f"(`sudo usermod -aG {group} {me.name}`, then log in again)"
        )
    return f"{SUDO} ({blocked} is closed to {me.name})"


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
