"""The repository's systemd files and the systemd tools the ops tests run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


SYSTEMD_DIR = ROOT / "systemd"


def tool(name: str) -> str:
    """The path of a system tool, or skip the test saying which package provides it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian package 'systemd'; `make deps` installs it)")
    return path


def unit_settings(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit, every value of repeated keys, sections ignored."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key, []).append(value)
    return out
