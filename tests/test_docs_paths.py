"""Every source path, module and Class.attr the README and docs/ name exists.

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

import dataclasses
import importlib
import inspect
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


def _matches(pattern: re.Pattern[str]) -> list[tuple[str, int, re.Match[str]]]:
    found = []
    for page in PAGES:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            found += [(page.name, number, m) for m in pattern.finditer(line)]
    return found


def _named(pattern: re.Pattern[str]) -> list[tuple[str, int, str]]:
    return [(page, number, m.group(1)) for page, number, m in _matches(pattern)]


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


METHOD = re.compile(r"`([A-Z][A-Za-z0-9]+)\.([a-z_][a-z0-9_]*)")


def _classes() -> dict[str, list[tuple[str, str]]]:
    """Each class defined in scanner_agent/ and drivers/: its modules' names and texts."""
    classes: dict[str, list[tuple[str, str]]] = {}
    for top in ("scanner_agent", "drivers"):
        for path in (ROOT / top).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for name in re.findall(r"^class ([A-Z]\w*)\b", text, re.M):
                classes.setdefault(name, []).append((module, text))
    return classes


def _defines(module: str, text: str, cls: str, attr: str) -> bool:
    """``attr`` is on the class, or set on its instances in its module or a base class's."""
    klass = getattr(importlib.import_module(module), cls, None)
    if hasattr(klass, attr):
        return True
    texts = [text] + [inspect.getsource(base) for base in getattr(klass, "__mro__", ())[1:-1]]
    assigned = re.compile(rf"(?:def |self\.|^\s+){re.escape(attr)}\b\s*[(:=]", re.M)
    return any(assigned.search(t) for t in texts)


def test_every_method_the_docs_name_is_defined() -> None:
    """``Daemon._admit`` was named after the daemon became a package: each ``Class.attr`` the
    pages name must be defined (a method, a field, an attribute set) on a class of that name."""
    classes = _classes()
    named = [(p, n, m) for p, n, m in _matches(METHOD) if m.group(1) in classes]
    assert len(named) > 10, "the pattern no longer finds the pages' Class.attr names"
    wrong = [
        f"{page}:{line}: {m.group(1)}.{m.group(2)}"
        for page, line, m in named
        if not any(
            _defines(module, text, m.group(1), m.group(2)) for module, text in classes[m.group(1)]
        )
    ]
    assert not wrong, "named in the docs but not defined on the class:\n" + "\n".join(wrong)


def _commands() -> dict[str, set[str]]:
    """Every ``scanner-agent`` command and subcommand, with the options it takes."""
    import argparse

    from scanner_agent.cli.app import build_parser

    found: dict[str, set[str]] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[prefix + name] = {o for a in sub._actions for o in a.option_strings}
                    walk(sub, f"{prefix}{name} ")

    walk(build_parser(), "")
    return found


COMMAND = re.compile(r"scanner-agent ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?")


def test_every_option_the_docs_show_a_command_is_one_it_takes() -> None:
    """``scanner-agent CMD [SUB] ... --opt`` in a page: ``--opt`` is an option of that command
    (up to the end of the code span, the table cell or a comment)."""
    commands = _commands()
    checked, wrong = 0, []
    for page in PAGES:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            for segment in re.split(r"(?=scanner-agent )", line)[1:]:
                m = COMMAND.match(segment)
                if m is None or m.group(1) not in commands:
                    continue
                pair = f"{m.group(1)} {m.group(2)}"
                command = pair if pair in commands else m.group(1)
                span = re.split(r"`|\||  #", segment[m.end() :])[0]
                for option in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", span):
                    checked += 1
                    if option not in commands[command]:
                        wrong.append(f"{page.name}:{number}: {command} {option}")
    assert checked > 30, "the pattern no longer finds the pages' command lines"
    assert not wrong, "options the commands do not take:\n" + "\n".join(wrong)


def test_every_toml_block_in_the_docs_loads() -> None:
    """A ```toml block is a config (every top-level key a config key: it must load) or a firmware
    profile (it has ``[profile]``: it must parse); a bare ``[hidpos]`` snippet is neither."""
    import tomllib

    from drivers.profiles import parse_profile
    from scanner_agent.config import AgentConfig, config_from_dict
    from scanner_agent.kernel import ConfigError

    config_keys = {f.name for f in dataclasses.fields(AgentConfig)} - {"sources"} | {"source"}
    loaded, wrong = 0, []
    for page in PAGES[1:]:  # README's blocks: tests/test_config.py
        text = page.read_text(encoding="utf-8")
        for block in re.finditer(r"^```toml\n(.*?)^```", text, re.M | re.S):
            where = f"{page.name}:{text[: block.start()].count(chr(10)) + 1}"
            try:
                data = tomllib.loads(block.group(1))
                if set(data) <= config_keys:
                    config_from_dict(data)
                elif "profile" in data:
                    parse_profile("docs-example", block.group(1))
                else:
                    continue
                loaded += 1
            except (tomllib.TOMLDecodeError, ConfigError) as exc:
                wrong.append(f"{where}: {type(exc).__name__}: {exc}")
    assert loaded > 8, "the pattern no longer finds the pages' toml blocks"
    assert not wrong, "toml blocks that do not load:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("page", "source_type"), [("tcp-protocol.md", "tcp"), ("camera.md", "camera")]
)
def test_the_defaults_a_page_tabulates_are_the_drivers(page: str, source_type: str) -> None:
    """A row ``| `key` | default | ...`` of a source's option table gives the registry's default:
    a backticked TOML value, a leading number (``600 s``), or ``required``."""
    import tomllib

    from drivers.registry import SOURCE_TYPES

    options = SOURCE_TYPES[source_type].options
    checked, wrong = 0, []
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        row = re.match(r"\| `([a-z_]+)` \| ([^|]+) \|", line)
        if row is None or row.group(1) not in options:
            continue
        key, cell = row.group(1), row.group(2).strip()
        option = options[key]
        if cell == "required":
            shown: object = None
            expected: object = None if option.required or option.default is None else "required"
        else:
            literal = re.match(r"`([^`]+)`|(-?\d+(?:\.\d+)?)", cell)
            assert literal is not None, f"{page}:{number}: cannot read the default {cell!r}"
            shown = tomllib.loads(f"v = {literal.group(1) or literal.group(2)}")["v"]
            default = option.default
            expected = list(default) if isinstance(default, tuple) else default
        checked += 1
        if shown != expected:
            wrong.append(f"{page}:{number}: {key}: shows {cell!r}, the default is {expected!r}")
    assert checked >= 5, "the pattern no longer finds the page's option table"
    assert not wrong, "\n".join(wrong)


BARE = re.compile(r"(?<![\w/.-])([a-z_][a-z0-9_]*\.py)\b")
NOT_OURS = {"hon_hidusb.py", "_x.py"}
"""A community project's file (drivers.md) and architecture.md's placeholder for any module."""


def test_every_bare_module_file_the_docs_name_is_in_the_repository() -> None:
    """``_sinks.py``, ``server.py``: a file named without its directory still exists somewhere,
    so a split that removes it shows up here."""
    ours = {
        path.name
        for top in ("scanner_agent", "drivers", "tests", "bench")
        for path in (ROOT / top).rglob("*.py")
    }
    named = [(p, n, name) for p, n, name in _named(BARE) if name not in NOT_OURS]
    assert len(named) > 50, "the pattern no longer finds the pages' file names"
    missing = [f"{page}:{line}: {name}" for page, line, name in named if name not in ours]
    assert not missing, "files the docs name that no directory holds:\n" + "\n".join(missing)
