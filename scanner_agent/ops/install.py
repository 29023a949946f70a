"""Install, upgrade and uninstall the agent as a systemd service; generate its udev rules.

``make install`` / ``scanner-agent install`` put, from a source checkout:

==============================================  ==========================================
what                                            where (defaults; ``DESTDIR`` goes first)
==============================================  ==========================================
a venv with the agent and every role's extra    ``/opt/scanner-agent/venv``
README and ``docs/operations.md``               ``/opt/scanner-agent``
the unit                                        ``/etc/systemd/system/scanner-agent.service``
udev rules, generated from the profiles         ``/etc/udev/rules.d/60-scanner-agent.rules``
the service user (sysusers.d)                   ``/etc/sysusers.d/scanner-agent.conf``
its directories (tmpfiles.d)                    ``/etc/tmpfiles.d/scanner-agent.conf``
a commented default config, only if none        ``/etc/scanner-agent/agent.toml``
==============================================  ==========================================

The venv gets ``pip install <src>[all]``: every role (daemon, TUI, camera,
wedge, hot-plug, USB; :mod:`scanner_agent.ops.roles`) works after one install.
``extras`` picks fewer (``make install INSTALL_EXTRAS=tui``); ``doctor``
then says which roles are unavailable.  The installer writes how it installed
(:data:`scanner_agent.ops.roles.INSTALL_INFO`) into the venv, so a missing
library's hint names the way to add it that fits this box.

Under a ``DESTDIR`` the venv is built in the staging root and then
*relocated*: every path the staging root put into it (script shebangs, the
activate scripts, ``pyvenv.cfg``) is rewritten to the final path, and the
bytecode is compiled with the final paths in it (or not at all, for the
Debian package, whose post-install step compiles it).  So a staged tree can
be copied or packaged as it is.

It is idempotent: a file already as it should be is left alone, a changed
one replaced (that is the upgrade), and an existing config never touched.
On the live system (no ``DESTDIR``) it then runs ``systemd-sysusers``,
``systemd-tmpfiles --create``, ``udevadm control --reload`` and ``trigger``,
``systemctl daemon-reload``, ``enable`` and ``try-restart``; a missing tool
or a system not booted with systemd is reported, not fatal.  With a
``DESTDIR`` (packaging, tests) none of those run.

Uninstall removes what install put, except the config directory and the
outbox data (``/var/lib/scanner-agent``), which are never removed.

The udev rules are a function of the firmware profiles (:func:`udev_rules`),
so the checked-in ``systemd/60-scanner-agent.rules`` cannot drift: a test
regenerates and compares it, and install writes freshly generated rules
(shipped plus site profiles).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from drivers import profiles
from scanner_agent.kernel import ScannerAgentError
from scanner_agent.ops.roles import INSTALL_INFO, MAKE_INSTALL

SERVICE = "scanner-agent.service"
SERVICE_USER = "scanner-agent"
DEFAULT_PREFIX = PurePosixPath("/opt/scanner-agent")
DEFAULT_SYSCONFDIR = PurePosixPath("/etc")
STATE_DIR = PurePosixPath("/var/lib/scanner-agent")
"""The unit's ``StateDirectory=``: the outbox.  Never removed."""
DEVICE_GROUPS = ("dialout", "video")
"""Groups the service user is in (sysusers ``m`` lines, unit ``SupplementaryGroups=``): serial
ports and cameras the udev rules do not know.  Known scanners' nodes get the service's own
group (:func:`udev_rules`), never a broad one such as ``plugdev``."""
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


# -- udev rules ----------------------------------------------------------------------

_SUBSYSTEM_BY_MODE = {
    "cdc-acm": 'SUBSYSTEM=="tty"',
    "ssi-cdc": 'SUBSYSTEM=="tty"',
    "hid-pos": 'SUBSYSTEM=="hidraw"',
    "keyboard": 'SUBSYSTEM=="input", KERNEL=="event*", ENV{ID_INPUT_KEYBOARD}=="1"',
}
"""USB mode -> the node's match keys.  Every node gets the service's own group: a scanner's
node carries what is scanned (and a wedge's, keystrokes), so no other group may read it."""
CDC_MODES = ("cdc-acm", "ssi-cdc")
"""Modes that enumerate as a modem-like tty, which ModemManager would probe with AT commands."""


@dataclass(frozen=True, slots=True)
class UdevDevice:
    """One ``vid:pid`` the profiles know, with the profiles listing it (sorted)."""

    vid: int
    pid: int
    mode: str
    profile_ids: tuple[str, ...]
    models: tuple[str, ...]

    @property
    def name(self) -> str:
        """The symlink stem: the first profile listing these ids."""
        return self.profile_ids[0]


def udev_devices(all_profiles: Iterable[profiles.Profile]) -> list[UdevDevice]:
    """Every ``(vid, pid)`` in the profiles' ``[[usb.ids]]``, merged, sorted by id."""
    found: dict[tuple[int, int, str], list[profiles.Profile]] = {}
    for profile in all_profiles:
        for usb in profile.usb_ids:
            found.setdefault((usb.vid, usb.pid, usb.mode), []).append(profile)
    out = []
    for (vid, pid, mode), listed in sorted(found.items()):
        listed.sort(key=lambda p: p.id)
        out.append(
            UdevDevice(
                vid,
                pid,
                mode,
                tuple(p.id for p in listed),
                tuple(f"{p.vendor} {p.model}" for p in listed),
            )
        )
    return out


def udev_rules(all_profiles: Iterable[profiles.Profile], *, service: str = SERVICE) -> str:
    """The udev rules for every scanner the profiles know (see ``docs/operations.md``).

    For each ``[[usb.ids]]`` entry, the node of its USB mode (tty for CDC,
    hidraw for HID POS, the keyboard event node for wedge mode) gets the
    service's group (``GROUP="scanner-agent"``, mode 0660, no other group), a ``/dev/scanner/<profile>-<usb serial>`` link
    (``<profile>-<usb path>`` when the device has no serial number), the
    ``systemd`` tag with ``SYSTEMD_WANTS`` (a plug-in starts the agent if it is
    stopped), and CDC ttys are hidden from ModemManager.
    """
    devices = udev_devices(all_profiles)
    lines = [
        f"# {RULES_NAME}: scanners the scanner-agent firmware profiles know, by USB id.",
        "# GENERATED by `scanner-agent udev-rules` from firmware_profiles/*.toml: do not edit;",
        "# add a site profile in /etc/scanner-agent/profiles and run `scanner-agent install` again.",
        f"# Known scanners get the service's own group ({SERVICE_USER}, mode 0660), a stable name",
        f"# /dev/{SYMLINK_DIR}/<profile>-<usb serial>, the systemd tag (hot-plug wakes the agent)",
        "# and, for CDC-ACM ttys, ModemManager's ignore flag (it would send AT probes otherwise).",
        "",
        'ACTION=="remove", GOTO="scanner_agent_end"',
        'SUBSYSTEM!="tty|hidraw|input|usb", GOTO="scanner_agent_end"',
        "",
        "# ModemManager: never probe CDC scanners (set on the USB device and on its tty).",
    ]
    for d in devices:
        if d.mode in CDC_MODES:
            lines.append(
                f'SUBSYSTEM=="usb", ENV{{DEVTYPE}}=="usb_device", {_ids(d, "ATTR")}, '
                'ENV{ID_MM_DEVICE_IGNORE}="1"'
            )
    lines += ['SUBSYSTEM=="usb", GOTO="scanner_agent_end"', ""]
    for d in devices:
        match = _SUBSYSTEM_BY_MODE[d.mode]
        lines.append(f"# {', '.join(d.models)} ({', '.join(d.profile_ids)}): {d.mode}")
        assign = [
            f'ENV{{SCANNER_AGENT_PROFILE}}="{d.name}"',
            f'ENV{{SCANNER_AGENT_MODE}}="{d.mode}"',
        ]
        if d.mode in CDC_MODES:
            assign.append('ENV{ID_MM_DEVICE_IGNORE}="1"')
        assign += [f'GROUP="{SERVICE_USER}"', 'MODE="0660"']
        lines.append(", ".join([match, _ids(d, "ATTRS"), *assign]))
    lines += [
        "",
        "# Common to every scanner matched above.",
        'ENV{SCANNER_AGENT_PROFILE}!="?*", GOTO="scanner_agent_end"',
        'IMPORT{builtin}="usb_id"',
        'IMPORT{builtin}="path_id"',
        'ENV{ID_SERIAL_SHORT}=="?*", '
        f'SYMLINK+="{SYMLINK_DIR}/$env{{SCANNER_AGENT_PROFILE}}-$env{{ID_SERIAL_SHORT}}"',
        'ENV{ID_SERIAL_SHORT}!="?*", ENV{ID_PATH_TAG}=="?*", '
        f'SYMLINK+="{SYMLINK_DIR}/$env{{SCANNER_AGENT_PROFILE}}-$env{{ID_PATH_TAG}}"',
        f'TAG+="systemd", ENV{{SYSTEMD_WANTS}}+="{service}"',
        "",
        'LABEL="scanner_agent_end"',
    ]
    return "\n".join(lines) + "\n"


def _ids(d: UdevDevice, key: str) -> str:
    return f'{key}{{idVendor}}=="{d.vid:04x}", {key}{{idProduct}}=="{d.pid:04x}"'


def generate_udev_rules(extra_dirs: Iterable[Path | str] = ()) -> str:
    """:func:`udev_rules` for the shipped profiles plus those in ``extra_dirs``."""
    return udev_rules(profiles.load_all(extra_dirs))


# -- layout ----------------------------------------------------------------------------


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


def _source_files(source: Path) -> Path:
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


# -- actions -----------------------------------------------------------------------------

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
"""Runs one command; tests pass a recorder.  Never called with a ``DESTDIR``."""


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """The default :data:`Runner`: run, capture output, never raise on exit status."""
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)  # noqa: S603


@dataclass
class Report:
    """What install or uninstall did, one line per step, for the CLI to print."""

    steps: list[tuple[str, str]] = field(default_factory=list)
    """``(what, outcome)``: outcome is created, updated, unchanged, kept, removed, ran..."""
    warnings: list[str] = field(default_factory=list)

    def add(self, what: str, outcome: str) -> None:
        self.steps.append((what, outcome))

    def lines(self) -> list[str]:
        """Human-readable lines: steps, then warnings."""
        return [f"{outcome:<10} {what}" for what, outcome in self.steps] + [
            f"warning    {w}" for w in self.warnings
        ]


def _write(path: Path, content: str, mode: int, report: Report, shown: PurePosixPath) -> None:
    if path.is_file() and path.read_text(encoding="utf-8") == content:
        if (path.stat().st_mode & 0o7777) != mode:
            path.chmod(mode)
        report.add(str(shown), "unchanged")
        return
    existed = path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(content, encoding="utf-8")
    tmp.chmod(mode)
    os.replace(tmp, path)
    report.add(str(shown), "updated" if existed else "created")


def _system(argv: Sequence[str], run: Runner, report: Report) -> bool:
    """Run a system command on the live system; a failure is a warning."""
    if shutil.which(argv[0]) is None:
        report.warnings.append(f"{argv[0]} not found; skipped: {' '.join(argv)}")
        return False
    result = run(argv)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip().splitlines()
        report.warnings.append(
            f"{' '.join(argv)} exited {result.returncode}" + (f": {detail[-1]}" if detail else "")
        )
        return False
    report.add(" ".join(argv), "ran")
    return True


def default_python() -> str:
    """The interpreter the service's venv is built on: the system's, not a user's pyenv."""
    system = Path("/usr/bin/python3")
    return str(system) if system.exists() else sys.executable


def install(
    layout: Layout,
    *,
    source: Path | None = None,
    venv: bool = True,
    python: str | None = None,
    extras: Sequence[str] = DEFAULT_EXTRAS,
    method: str = MAKE_INSTALL,
    compile_bytecode: bool = True,
    package: bool = False,
    run: Runner = run_command,
) -> Report:
    """Install or upgrade (see the module docstring); returns what was done.

    ``extras`` are the ``pyproject.toml`` extras the venv gets (default: every
    role); ``method`` is recorded in the venv for hints (``make install``, or
    ``debian package`` when the package build calls this); ``compile_bytecode``
    false leaves the venv without ``.pyc`` files (the package compiles them on
    the target).  ``package`` is the Debian package build (``debian/rules``):
    staged only, it puts the venv, the docs and the default config, and leaves
    the unit, udev rules, sysusers and tmpfiles entries to debhelper (which
    installs the same files from ``systemd/`` under ``/lib`` and ``/usr/lib``
    with their maintainer-script snippets) and writes no uninstall manifest
    (dpkg owns the files).

    Raises:
        InstallError: no source checkout, an unknown extra, or the venv could not be built.
    """
    src = source if source is not None else source_root()
    systemd_dir = _source_files(src)
    wanted = check_extras(extras, src) if venv else ()
    if package and not layout.staged:
        raise InstallError("Failed to build the package layout: Expected a DESTDIR")
    report = Report()
    old_umask = os.umask(0o022)  # the service user must be able to read the venv
    try:
        files = [
            (
                layout.unit_file,
                render_unit((systemd_dir / SERVICE).read_text(encoding="utf-8"), layout),
            ),
            (
                layout.rules_file,
                generate_udev_rules([layout.real(layout.site_profiles)]),
            ),
            (
                layout.sysusers_file,
                (systemd_dir / "scanner-agent.sysusers.conf").read_text(encoding="utf-8"),
            ),
            (
                layout.tmpfiles_file,
                render_tmpfiles(
                    (systemd_dir / "scanner-agent.tmpfiles.conf").read_text(encoding="utf-8"),
                    layout,
                ),
            ),
            (layout.prefix / "README.md", (src / "README.md").read_text(encoding="utf-8")),
        ]
        if package:  # debhelper installs the system files (see the docstring)
            files = files[-1:]
        ops_doc = src / "docs" / "operations.md"
        if ops_doc.is_file():
            files.append(
                (layout.prefix / "docs" / "operations.md", ops_doc.read_text(encoding="utf-8"))
            )
        for target, content in files:
            _write(layout.real(target), content, 0o644, report, target)
        if not layout.staged:
            _system(["systemd-sysusers", str(layout.sysusers_file)], run, report)
            _system(["systemd-tmpfiles", "--create", str(layout.tmpfiles_file)], run, report)
        _install_config(layout, systemd_dir, report)
        if venv:
            spec = VenvSpec(
                source=src,
                python=python or default_python(),
                extras=wanted,
                method=method,
                compile_bytecode=compile_bytecode,
            )
            _install_venv(layout, spec, run, report)
        if not package:
            manifest = [str(t) for t, _ in files]
            _write(
                layout.real(layout.prefix / MANIFEST),
                "\n".join(manifest) + "\n",
                0o644,
                report,
                layout.prefix / MANIFEST,
            )
        if not layout.staged:
            _activate(layout, run, report)
    finally:
        os.umask(old_umask)
    return report


def _install_config(layout: Layout, systemd_dir: Path, report: Report) -> None:
    real = layout.real(layout.config_file)
    if real.exists():
        report.add(str(layout.config_file), "kept")
        return
    real.parent.mkdir(parents=True, exist_ok=True)
    text = (systemd_dir / "agent.toml").read_text(encoding="utf-8")
    real.write_text(render_unit(text, layout), encoding="utf-8")
    real.chmod(0o640)
    if not layout.staged:
        try:
            shutil.chown(real, "root", SERVICE_USER)
            shutil.chown(real.parent, "root", SERVICE_USER)
        except (LookupError, OSError) as exc:
            report.warnings.append(f"could not give {real} to group {SERVICE_USER}: {exc}")
    report.add(str(layout.config_file), "created")


def check_extras(extras: Iterable[str], source: Path) -> tuple[str, ...]:
    """The extras, checked against ``source``'s ``pyproject.toml`` (a typo is an error, not a
    silently slimmer install); blanks dropped.

    Raises:
        InstallError: an extra the project does not declare.
    """
    import tomllib

    wanted = tuple(dict.fromkeys(e.strip() for e in extras if e.strip()))
    try:
        project = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
        known = set(project["project"]["optional-dependencies"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise InstallError(
            f"Failed to read the extras of {source / 'pyproject.toml'}: {exc}"
        ) from exc
    unknown = [e for e in wanted if e not in known or e == "dev"]
    if unknown:
        raise InstallError(
            f"Failed to use {','.join(unknown)} as INSTALL_EXTRAS: Expected some of "
            f"{', '.join(sorted(known - {'dev'}))} (comma-separated; empty for the daemon alone)"
        )
    return wanted


@dataclass(frozen=True, slots=True)
class VenvSpec:
    """What the venv is built from and how."""

    source: Path
    python: str
    extras: tuple[str, ...] = DEFAULT_EXTRAS
    method: str = MAKE_INSTALL
    compile_bytecode: bool = True


def _install_venv(layout: Layout, spec: VenvSpec, run: Runner, report: Report) -> None:
    venv = layout.real(layout.venv)
    if not (venv / "bin" / "python").exists():
        _checked(run, [spec.python, "-m", "venv", str(venv)], "create the venv")
        report.add(str(layout.venv), "created")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--upgrade"]
    if layout.staged:  # compiled below, with the final paths in the bytecode
        pip.append("--no-compile")
    _checked(run, [*pip, "pip"], "upgrade pip in the venv")
    target = f"{spec.source}[{','.join(spec.extras)}]" if spec.extras else str(spec.source)
    _checked(run, [*pip, target], f"pip install {target}")
    report.add(f"{layout.venv}: scanner-agent from {target}", "installed")
    info = {"method": spec.method, "extras": list(spec.extras), "source": str(spec.source)}
    if venv.is_dir():
        _write(
            venv / INSTALL_INFO,
            json.dumps(info, indent=1) + "\n",
            0o644,
            report,
            layout.venv / INSTALL_INFO,
        )
    if layout.staged:
        relocate_venv(venv, layout.venv, report)
        if not spec.compile_bytecode:  # ensurepip compiled pip and setuptools anyway
            for cache in sorted(venv.rglob("__pycache__"), reverse=True):
                shutil.rmtree(cache)
        if spec.compile_bytecode:
            _checked(
                run,
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "compileall",
                    "-q",
                    "-f",  # ensurepip's own bytecode has the staging path in it too
                    "-j0",
                    "-s",
                    str(layout.destdir),
                    "-p",
                    "/",
                    str(venv / "lib"),
                ],
                "compile the venv's bytecode",
            )


def relocate_venv(staged: Path, final: PurePosixPath, report: Report | None = None) -> list[Path]:
    """Rewrite the staging path ``staged`` to ``final`` wherever a venv keeps it; the files changed.

    A venv names its own location in its scripts' shebangs, the activate
    scripts and ``pyvenv.cfg``; everything else in it is relative (``RECORD``)
    or found from ``sys.prefix`` at run time.  Text files in ``bin`` and
    ``pyvenv.cfg`` are rewritten; binaries and symlinks (``bin/python`` points
    at the system interpreter) are left as they are.
    """
    old, new = str(staged).encode(), str(final).encode()
    if old == new:
        return []
    changed = []
    candidates = [staged / "pyvenv.cfg"]
    if (staged / "bin").is_dir():
        candidates += sorted((staged / "bin").iterdir())
    for path in candidates:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if old not in data or b"\0" in data[:4096]:
            continue
        mode = path.stat().st_mode & 0o7777
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data.replace(old, new))
        tmp.chmod(mode)
        os.replace(tmp, path)
        changed.append(path)
    if report is not None and changed:
        report.add(f"{final}: {len(changed)} files relocated from {staged}", "updated")
    return changed


def _checked(run: Runner, argv: Sequence[str], what: str) -> None:
    result = run(argv)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip()[-2000:]
        raise InstallError(
            f"Failed to {what}: {' '.join(argv)} exited {result.returncode}\n{detail}"
        )


def _activate(layout: Layout, run: Runner, report: Report) -> None:
    if _system(["udevadm", "control", "--reload-rules"], run, report):
        _system(
            [
                "udevadm",
                "trigger",
                "--action=change",
                "--subsystem-match=tty",
                "--subsystem-match=hidraw",
                "--subsystem-match=input",
                "--subsystem-match=usb",
            ],
            run,
            report,
        )
    if _system(["systemctl", "daemon-reload"], run, report):
        _system(["systemctl", "enable", SERVICE], run, report)
        _system(["systemctl", "try-restart", SERVICE], run, report)


def uninstall(layout: Layout, *, run: Runner = run_command) -> Report:
    """Remove what :func:`install` put; keep the config and the outbox data.

    Raises:
        InstallError: never for a missing file (uninstalling twice is fine).
    """
    report = Report()
    if not layout.staged:
        _system(["systemctl", "disable", "--now", SERVICE], run, report)
    listed = layout.real(layout.prefix / MANIFEST)
    targets = [
        layout.unit_file,
        layout.rules_file,
        layout.sysusers_file,
        layout.tmpfiles_file,
        layout.prefix / "README.md",
        layout.prefix / "docs" / "operations.md",
    ]
    if listed.is_file():
        targets += [PurePosixPath(line) for line in listed.read_text().splitlines() if line]
    for target in [*dict.fromkeys(targets), layout.prefix / MANIFEST]:
        if not _inside(target, layout):
            report.warnings.append(f"not removed (outside the install locations): {target}")
            continue
        real = layout.real(target)
        if real.is_file() or real.is_symlink():
            real.unlink()
            report.add(str(target), "removed")
    venv = layout.real(layout.venv)
    if venv.is_dir():
        shutil.rmtree(venv)
        report.add(str(layout.venv), "removed")
    for directory in (layout.prefix / "docs", layout.prefix):
        real = layout.real(directory)
        if real.is_dir() and not any(real.iterdir()):
            real.rmdir()
            report.add(str(directory), "removed")
    report.add(f"{layout.confdir} (config)", "kept")
    report.add(f"{STATE_DIR} (outbox data)", "kept")
    if not layout.staged:
        _system(["systemctl", "daemon-reload"], run, report)
        _system(["udevadm", "control", "--reload-rules"], run, report)
    return report


def _inside(target: PurePosixPath, layout: Layout) -> bool:
    """Only files under the prefix or the exact system files install writes are removed."""
    if target.is_relative_to(STATE_DIR) or target.is_relative_to(layout.confdir):
        return False
    return target.is_relative_to(layout.prefix) or target in (
        layout.unit_file,
        layout.rules_file,
        layout.sysusers_file,
        layout.tmpfiles_file,
    )
