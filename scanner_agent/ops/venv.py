"""The service's venv: built from the source checkout with the extras asked for, and
relocated when staged under a ``DESTDIR`` (see :mod:`scanner_agent.ops.install`)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from scanner_agent.ops.layout import DEFAULT_EXTRAS, InstallError, Layout
from scanner_agent.ops.roles import INSTALL_INFO, MAKE_INSTALL
from scanner_agent.ops.steps import Report, Runner, run_checked, write_file


def default_python() -> str:
    """The interpreter the service's venv is built on: the system's, not a user's pyenv."""
    system = Path("/usr/bin/python3")
    return str(system) if system.exists() else sys.executable


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


def install_venv(layout: Layout, spec: VenvSpec, run: Runner, report: Report) -> None:
    venv = layout.real(layout.venv)
    if not (venv / "bin" / "python").exists():
        run_checked(run, [spec.python, "-m", "venv", str(venv)], "create the venv")
        report.add(str(layout.venv), "created")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--upgrade"]
    if layout.staged:  # compiled below, with the final paths in the bytecode
        pip.append("--no-compile")
    run_checked(run, [*pip, "pip"], "upgrade pip in the venv")
    target = f"{spec.source}[{','.join(spec.extras)}]" if spec.extras else str(spec.source)
    run_checked(run, [*pip, target], f"pip install {target}")
    report.add(f"{layout.venv}: scanner-agent from {target}", "installed")
    info = {"method": spec.method, "extras": list(spec.extras), "source": str(spec.source)}
    if venv.is_dir():
        write_file(
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
            run_checked(
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
