"""The steps an install is made of: run a system command, write a file, report each.

:class:`Report` is what ``install`` and ``uninstall`` return (one line per step,
then warnings) and the CLI prints; a :data:`Runner` runs one command (tests pass
a recorder).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from scanner_agent.ops.layout import InstallError

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


def write_file(path: Path, content: str, mode: int, report: Report, shown: PurePosixPath) -> None:
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


def run_system(argv: Sequence[str], run: Runner, report: Report) -> bool:
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


def run_checked(run: Runner, argv: Sequence[str], what: str) -> None:
    result = run(argv)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip()[-2000:]
        raise InstallError(
            f"Failed to {what}: {' '.join(argv)} exited {result.returncode}\n{detail}"
        )
