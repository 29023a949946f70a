"""Every source path and module the README and docs/ name exists.

Modules move (today the CLI, the daemon and the ops modules became packages)
and a page that still names the old place sends a reader to nothing.  These
tests read README.md and docs/*.md and check each repository path they name
(``scanner_agent/ops/doctor.py``, ``drivers/hidraw.py``, ``tests/ops/``,
``firmware_profiles/*.toml``; a path under a subpackage of ``scanner_agent``
may leave that prefix out, as ``sinks/epcis/_sink.py`` does) and each dotted
name (``scanner_agent.control.server.ControlServer``, ``drivers.device.DeviceError``):
the module imports and the attribute is there.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

TOP = ("scanner_agent", "drivers", "tests", "bench", "systemd", "debian", "firmware_profiles")
SUBPACKAGES = tuple(
    p.name for p in (ROOT / "scanner_agent").iterdir() if (p / "__init__.py").is_file()
)
_EXT = r"(?:py|toml|md|rules|service|conf|json|tcss|csv|txt)"
# A path starts a token (not inside /etc/... or a URL) and ends in a file extension or a slash.
PATH = re.compile(
    rf"(?<![\w/.:-])((?:{'|'.join(TOP + SUBPACKAGES)})/(?:[\w./*-]*?(?:\.{_EXT}|/))?)(?![\w/])"
)
DOTTED = re.compile(r"(?<![\w./-])((?:scanner_agent|drivers)(?:\.[A-Za-z_]\w*)+)")


def _named(pattern: re.Pattern[str]) -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            found += [(page.name, number, m.group(1)) for m in pattern.finditer(line)]
    return found


def _exists(path: str) -> bool:
    for base in (ROOT, ROOT / "scanner_agent"):
        if any(base.glob(path)) if "*" in path else (base / path).exists():
            return True
    return False


def test_every_path_the_docs_name_exists() -> None:
    named = _named(PATH)
    assert len(named) > 50, "the pattern no longer finds the pages' paths"
    missing = [f"{page}:{line}: {path}" for page, line, path in named if not _exists(path)]
    assert not missing, "named in the docs but not in the repository:\n" + "\n".join(missing)


def _resolves(name: str) -> bool:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_module_and_name_the_docs_name_resolves() -> None:
    named = [(p, n, name) for p, n, name in _named(DOTTED) if name != "drivers.md"]
    assert len(named) > 10, "the pattern no longer finds the pages' dotted names"
    wrong = [f"{page}:{line}: {name}" for page, line, name in named if not _resolves(name)]
    assert not wrong, "named in the docs but not importable:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("text", "paths"),
    [
        (
            "see `scanner_agent/ops/doctor.py` and /etc/systemd/system/x.service",
            ["scanner_agent/ops/doctor.py"],
        ),
        ("`sinks/epcis/` (`lab/epcis_emulator.py`)", ["sinks/epcis/", "lab/epcis_emulator.py"]),
        (
            "`firmware_profiles/*.toml`, tests/camera/synth.carton_1080p",
            ["firmware_profiles/*.toml"],
        ),
    ],
)
def test_the_path_pattern(text: str, paths: list[str]) -> None:
    assert [m.group(1) for m in PATH.finditer(text)] == paths
