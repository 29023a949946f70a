"""The CLI is a package of thin command modules (issue 18), and every command is documented.

``scanner_agent/cli/`` holds one module per command group, each with a
``register(add)``; :data:`scanner_agent.cli.app.COMMANDS` lists them in
``--help`` order.  A command module imports the library, ``output`` and
``_common``, never another group's commands, so each can be read alone.
Every command has help text and is shown in the README or docs (as
sqlite-utils' ``tests/test_docs.py`` checks its commands).
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner_agent.cli import app, build_parser

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "scanner_agent" / "cli"
NOT_COMMANDS = {"__init__", "__main__", "app", "output", "_common", "_dispatch", "bill_files"}
"""Modules of the package that register no command group of their own (``bill_files`` holds
part of the ``bill`` group, registered by ``bills``)."""
SPANS = {("bills", "bill_files")}
"""A command module that may import another: one group in two modules."""


def _leaves(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str]]:
    """Every runnable command: its words, its parser and its help line."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                for leaf, p, text in _leaves(sub, (*words, name)):
                    yield leaf, p, text or helps.get(name, "")
            return
    yield words, parser, ""


def test_every_command_module_is_registered_and_every_registered_one_exists() -> None:
    on_disk = {p.stem for p in CLI.glob("*.py")} - NOT_COMMANDS
    listed = {m.rsplit(".", 1)[1] for m in app.COMMANDS}
    assert on_disk == listed
    assert len(app.COMMANDS) == len(set(app.COMMANDS))


def _cli_imports(path: Path) -> set[str]:
    """The modules of ``scanner_agent.cli`` that ``path`` imports (at any level)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("scanner_agent.cli."):
                found.add(node.module.split(".")[2])
            elif node.module == "scanner_agent.cli":
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(
                a.name.split(".")[2] for a in node.names if a.name.startswith("scanner_agent.cli.")
            )
    return found


@pytest.mark.parametrize("module", [m.rsplit(".", 1)[1] for m in app.COMMANDS])
def test_a_command_module_imports_no_other_command_module(module: str) -> None:
    commands = {m.rsplit(".", 1)[1] for m in app.COMMANDS} | {"bill_files"}
    others = _cli_imports(CLI / f"{module}.py") & commands - {module}
    assert {(module, o) for o in others} <= SPANS


def test_the_check_sees_an_import_of_another_command_module() -> None:
    assert "bill_files" in _cli_imports(CLI / "bills.py")
    assert "_common" in _cli_imports(CLI / "queue.py")


def test_every_command_has_help_and_is_shown_in_the_readme_or_docs() -> None:
    docs = (ROOT / "README.md").read_text(encoding="utf-8") + "".join(
        p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md"))
    )
    leaves = list(_leaves(build_parser()))
    assert len(leaves) > 30
    no_help = [" ".join(w) for w, p, text in leaves if not (text or p.description)]
    undocumented = [" ".join(w) for w, _, _ in leaves if f"scanner-agent {' '.join(w)}" not in docs]
    assert no_help == []
    assert undocumented == []


def test_the_operations_commands_run_alone_with_their_module() -> None:
    # `make install` runs them so with the system Python, before a venv exists: the module
    # runs once, as __main__ (no RuntimeWarning), and loads no other command group.
    code = (
        "import runpy, sys; sys.argv = ['scanner-agent', 'udev-rules', '--check', "
        f"{str(ROOT / 'systemd' / '60-scanner-agent.rules')!r}]\n"
        "try:\n"
        "    runpy.run_module('scanner_agent.cli.ops', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exc:\n"
        "    loaded = sorted(m for m in sys.modules if m.startswith('scanner_agent.cli.'))\n"
        "    print(exc.code, loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    status, _, loaded = done.stdout.strip().splitlines()[-1].partition(" ")
    assert status == "0"
    assert (
        loaded
        == "['scanner_agent.cli._common', 'scanner_agent.cli._dispatch', 'scanner_agent.cli.app', "
        "'scanner_agent.cli.output']"
    )
