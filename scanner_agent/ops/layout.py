"""Where an install puts things: the names, the paths and the groups, one place for all.

:class:`Layout` maps every installed file to its path on the target system
(``DESTDIR``, ``PREFIX`` and ``SYSCONFDIR`` as ``make install`` takes them);
the constants are the service's names that the unit, the sysusers and tmpfiles
entries, the udev rules, preflight and doctor share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from scanner_agent.kernel import ScannerAgentError

SERVICE = "scanner-agent.service"
SERVICE_USER = "scanner-agent"
DEFAULT_PREFIX = PurePosixPath("/opt/scanner-agent")
DEFAULT_SYSCONFDIR = PurePosixPath("/etc")
STATE_DIR = PurePosixPath("/var/lib/scanner-agent")
"""The unit's ``StateDirectory=``: the outbox.  Never removed."""
DEVICE_GROUPS = ("dialout", "video")
"""Groups the service user is in (sysusers ``m`` lines, unit ``SupplementaryGroups=``): serial
ports and cameras the udev rules do not know.  Known scanners' nodes get the service's own
group (:func:`scanner_agent.ops.udev.udev_rules`), never a broad one such as ``plugdev``."""
DISPATCH_GROUP = "scanner-dispatch"
"""The dispatch clerks' group: it reaches the control socket (the installed config's
``control.group``) and nothing else; the token, app secret and outbox belong to the service user
and its own group, which has no other member.  sysusers creates it and puts the service user in
it (to give the socket that group); the unit lists it in ``SupplementaryGroups=``."""
SUPPLEMENTARY_GROUPS = (*DEVICE_GROUPS, DISPATCH_GROUP)
"""The unit's ``SupplementaryGroups=``."""
RULES_NAME = "60-scanner-agent.rules"
SYMLINK_DIR = "scanner"
"""``/dev/scanner/<profile>-<usb serial>``: stable names for known scanners."""
MANIFEST = "INSTALLED"
"""File in the prefix listing what install put, for uninstall."""
DEFAULT_EXTRAS: tuple[str, ...] = ("all",)
"""Every role's libraries (``pyproject.toml``'s ``all`` extra)."""


class InstallError(ScannerAgentError):
    """The installation cannot proceed (no source tree, a bad prefix, a failed step)."""


def _abs(value: str | PurePosixPath, name: str) -> PurePosixPath:
    path = PurePosixPath(value)
    if not path.is_absolute() or ".." in path.parts:
        raise InstallError(f"Failed to use {str(value)!r} as {name}: Expected an absolute path")
    return path


@dataclass(frozen=True, slots=True)
class Layout:
    """Where things go.  Paths are as seen on the target system; ``destdir`` is prepended."""

    destdir: Path = Path("/")
    """Staging root (``DESTDIR``); ``/`` installs into the live system."""
    prefix: PurePosixPath = DEFAULT_PREFIX
    """The agent's own tree: venv and documentation (``PREFIX``)."""
    sysconfdir: PurePosixPath = DEFAULT_SYSCONFDIR
    """Configuration root (``SYSCONFDIR``): config, unit, rules, sysusers and tmpfiles go under it."""

    @classmethod
    def create(
        cls,
        *,
        destdir: str | Path = "",
        prefix: str = str(DEFAULT_PREFIX),
        sysconfdir: str = str(DEFAULT_SYSCONFDIR),
    ) -> Layout:
        """Validate the variables (empty ``destdir`` means the live system).

        Raises:
            InstallError: a relative path, or a prefix that is a system directory.
        """
        pre = _abs(prefix, "PREFIX")
        if len(pre.parts) < 3 and pre.name != "scanner-agent":
            raise InstallError(
                f"Failed to use {prefix!r} as PREFIX: Expected a directory of its own, "
                "such as /opt/scanner-agent (uninstall removes it)"
            )
        root = Path(destdir) if str(destdir) else Path("/")
        if not root.is_absolute():
            root = root.resolve()
        return cls(root, pre, _abs(sysconfdir, "SYSCONFDIR"))

    @property
    def staged(self) -> bool:
        """True when installing under a ``DESTDIR`` (no system commands run)."""
        return self.destdir != Path("/")

    def real(self, path: PurePosixPath) -> Path:
        """``path`` under ``destdir``."""
        return self.destdir / path.relative_to("/")

    @property
    def venv(self) -> PurePosixPath:
        return self.prefix / "venv"

    @property
    def confdir(self) -> PurePosixPath:
        return self.sysconfdir / "scanner-agent"

    @property
    def config_file(self) -> PurePosixPath:
        return self.confdir / "agent.toml"

    @property
    def unit_file(self) -> PurePosixPath:
        return self.sysconfdir / "systemd" / "system" / SERVICE

    @property
    def rules_file(self) -> PurePosixPath:
        return self.sysconfdir / "udev" / "rules.d" / RULES_NAME

    @property
    def sysusers_file(self) -> PurePosixPath:
        return self.sysconfdir / "sysusers.d" / "scanner-agent.conf"

    @property
    def tmpfiles_file(self) -> PurePosixPath:
        return self.sysconfdir / "tmpfiles.d" / "scanner-agent.conf"

    @property
    def site_profiles(self) -> PurePosixPath:
        return self.confdir / "profiles"


# -- the source tree ---------------------------------------------------------------------


def source_root() -> Path:
    """The checkout this module runs from (an editable install or ``python -m``)."""
    return Path(__file__).resolve().parents[2]


def source_files(source: Path) -> Path:
    systemd_dir = source / "systemd"
    if not (systemd_dir / SERVICE).is_file() or not (source / "pyproject.toml").is_file():
        raise InstallError(
            f"Failed to find the unit files under {str(source)!r}: Expected a scanner-agent "
            "source checkout (run `make install` there, or pass --source)"
        )
    return systemd_dir


def render_unit(text: str, layout: Layout) -> str:
    """The unit with the prefix and config directory of ``layout``."""
    return text.replace(str(DEFAULT_PREFIX) + "/", f"{layout.prefix}/").replace(
        "/etc/scanner-agent/", f"{layout.confdir}/"
    )


def render_tmpfiles(text: str, layout: Layout) -> str:
    """The tmpfiles entries with the config directory of ``layout``."""
    return text.replace("/etc/scanner-agent", str(layout.confdir))
