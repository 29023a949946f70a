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

The pieces live beside this module: :mod:`.layout` (names, paths, groups),
:mod:`.udev` (the rules, generated from the firmware profiles), :mod:`.venv`
(build and relocate the venv) and :mod:`.steps` (run, write, report).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from scanner_agent.ops.layout import (
    DEFAULT_EXTRAS,
    MANIFEST,
    SERVICE,
    SERVICE_USER,
    STATE_DIR,
    InstallError,
    Layout,
    render_tmpfiles,
    render_unit,
    source_files,
    source_root,
)
from scanner_agent.ops.roles import MAKE_INSTALL
from scanner_agent.ops.steps import Report, Runner, run_command, run_system, write_file
from scanner_agent.ops.udev import generate_udev_rules
from scanner_agent.ops.venv import VenvSpec, check_extras, default_python, install_venv


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
    systemd_dir = source_files(src)
    wanted = check_extras(extras, src) if venv else ()
    if package and not layout.staged:
        raise InstallError("Failed to build the package layout: Expected a DESTDIR")
    report = Report()
    old_umask = os.umask(0o022)  # the service user must be able to read the venv
    try:
        files = _files(layout, src, systemd_dir, package=package)
        for target, content in files:
            write_file(layout.real(target), content, 0o644, report, target)
        if not layout.staged:
            run_system(["systemd-sysusers", str(layout.sysusers_file)], run, report)
            run_system(["systemd-tmpfiles", "--create", str(layout.tmpfiles_file)], run, report)
        _install_config(layout, systemd_dir, report)
        if venv:
            spec = VenvSpec(
                source=src,
                python=python or default_python(),
                extras=wanted,
                method=method,
                compile_bytecode=compile_bytecode,
            )
            install_venv(layout, spec, run, report)
        if not package:
            manifest = [str(t) for t, _ in files]
            write_file(
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


def _files(
    layout: Layout, src: Path, systemd_dir: Path, *, package: bool
) -> list[tuple[PurePosixPath, str]]:
    """Every file install writes as it is (the config apart), with its content.

    The unit, the udev rules, sysusers and tmpfiles entries, the README and
    ``docs/operations.md``; for the Debian package only the documents
    (debhelper installs the system files, see :func:`install`).
    """

    def text(name: str) -> str:
        return (systemd_dir / name).read_text(encoding="utf-8")

    files = [
        (layout.unit_file, render_unit(text(SERVICE), layout)),
        (layout.rules_file, generate_udev_rules([layout.real(layout.site_profiles)])),
        (layout.sysusers_file, text("scanner-agent.sysusers.conf")),
        (layout.tmpfiles_file, render_tmpfiles(text("scanner-agent.tmpfiles.conf"), layout)),
        (layout.prefix / "README.md", (src / "README.md").read_text(encoding="utf-8")),
    ]
    if package:
        files = files[-1:]
    ops_doc = src / "docs" / "operations.md"
    if ops_doc.is_file():
        files.append(
            (layout.prefix / "docs" / "operations.md", ops_doc.read_text(encoding="utf-8"))
        )
    return files


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


def _activate(layout: Layout, run: Runner, report: Report) -> None:
    if run_system(["udevadm", "control", "--reload-rules"], run, report):
        run_system(
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
    if run_system(["systemctl", "daemon-reload"], run, report):
        run_system(["systemctl", "enable", SERVICE], run, report)
        run_system(["systemctl", "try-restart", SERVICE], run, report)


def uninstall(layout: Layout, *, run: Runner = run_command) -> Report:
    """Remove what :func:`install` put; keep the config and the outbox data.

    Raises:
        InstallError: never for a missing file (uninstalling twice is fine).
    """
    report = Report()
    if not layout.staged:
        run_system(["systemctl", "disable", "--now", SERVICE], run, report)
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
        run_system(["systemctl", "daemon-reload"], run, report)
        run_system(["udevadm", "control", "--reload-rules"], run, report)
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
