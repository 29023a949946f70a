"""The library's docstring examples run with the suite (``--doctest-modules`` over
scanner_agent and drivers), and an example that pytest would not collect is an error."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("scanner_agent", "drivers")
EXAMPLE = re.compile(r"^\s*>>> ", re.MULTILINE)


def test_the_suite_collects_the_library_doctests() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pytest_options = options["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in pytest_options["addopts"].split()
    assert set(LIBRARY) <= set(pytest_options["testpaths"])


def test_every_module_with_an_example_has_a_doctest_that_runs() -> None:
    """A ``>>>`` line that yields no doctest item (a commented-out example, one in a module
    pytest cannot import) would look like a checked example and check nothing."""
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *LIBRARY,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    with_items = {line.partition("::")[0] for line in collected.splitlines() if "::" in line}
    with_examples = {
        str(path.relative_to(ROOT))
        for top in LIBRARY
        for path in sorted((ROOT / top).rglob("*.py"))
        if EXAMPLE.search(path.read_text(encoding="utf-8"))
    }
    assert with_examples, "no examples found: the search is broken"
    assert with_examples <= with_items, sorted(with_examples - with_items)
