"""Small modules and short functions: no module of the library over :data:`MODULE_LINES`
lines and no function over :data:`FUNCTION_LINES`, except what docs/architecture.md lists
under "Size limits", each with its reason: a module that is one cohesive protocol, or a
function that is a measured hot path (kept flat on purpose); nothing else may be listed (the
"to split" rows of the redesign are all split). A listed entry that is back under its limit,
or gone, fails too, so the list only shrinks and stays true.
"""

from __future__ import annotations

import ast
import re

from tests.support.imports import ROOT

MODULE_LINES = 500
FUNCTION_LINES = 80
LIBRARY = ("scanner_agent", "drivers")
DOC = ROOT / "docs" / "architecture.md"

MODULE_KINDS = {"cohesive protocol"}
FUNCTION_KINDS = {"hot path"}


def _listed() -> dict[str, str]:
    """The "Size limits" table of docs/architecture.md: where -> kind."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Size limits\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([a-z ]+) \| (.+) \|$", section, re.M)
    assert rows, "docs/architecture.md has no Size limits table"
    listed = {where: kind.strip() for where, kind, _ in rows}
    assert len(listed) == len(rows), "an entry is listed twice"
    return listed


def _sizes() -> tuple[dict[str, int], dict[str, int]]:
    """Lines per module (path) and per function (``path:Qualified.name``, decorators included)."""
    modules: dict[str, int] = {}
    functions: dict[str, int] = {}
    for top in LIBRARY:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            text = path.read_text(encoding="utf-8")
            modules[rel] = len(text.splitlines())

            def visit(node: ast.AST, prefix: str, rel: str = rel) -> None:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        name = f"{prefix}{child.name}"
                        if not isinstance(child, ast.ClassDef):
                            first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                            assert child.end_lineno is not None
                            functions[f"{rel}:{name}"] = child.end_lineno - first + 1
                        visit(child, name + ".")

            visit(ast.parse(text, rel), "")
    return modules, functions


def test_modules_are_small_or_listed() -> None:
    modules, _ = _sizes()
    listed = _listed()
    big = {m: n for m, n in modules.items() if n > MODULE_LINES}
    unlisted = sorted(f"{m} ({n} lines)" for m, n in big.items() if m not in listed)
    assert unlisted == [], f"split these, or list them under Size limits: {unlisted}"
    wrong_kind = sorted(m for m in big if m in listed and listed[m] not in MODULE_KINDS)
    assert wrong_kind == []


def test_functions_are_short_or_listed() -> None:
    _, functions = _sizes()
    listed = _listed()
    long = {f: n for f, n in functions.items() if n > FUNCTION_LINES}
    unlisted = sorted(f"{f} ({n} lines)" for f, n in long.items() if f not in listed)
    assert unlisted == [], f"split these, or list them under Size limits: {unlisted}"
    wrong_kind = sorted(f for f in long if f in listed and listed[f] not in FUNCTION_KINDS)
    assert wrong_kind == []


def test_every_listed_entry_is_still_over_its_limit() -> None:
    """A split module or function leaves the list (so the list stays true)."""
    modules, functions = _sizes()
    stale = sorted(
        where
        for where in _listed()
        if (
            functions.get(where, 0) <= FUNCTION_LINES
            if ":" in where
            else modules.get(where, 0) <= MODULE_LINES
        )
    )
    assert stale == [], f"under the limit now (or gone): remove from Size limits: {stale}"
