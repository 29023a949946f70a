"""The project's import graph read from the source with :mod:`ast`: every ``import``
statement counts, at module level, inside a function (lazy) or under ``TYPE_CHECKING``,
so a dependency hidden by a lazy import still shows.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root."""


@dataclass(frozen=True, slots=True)
class Import:
    """One imported module name as written in ``importer`` (relative names resolved)."""

    importer: str
    target: str
    line: int


def module_name(path: Path, root: Path = ROOT) -> str:
    """``scanner_agent/outbox/_core.py`` -> ``scanner_agent.outbox._core`` (a package's
    ``__init__.py`` is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(tops: Iterable[str], root: Path = ROOT) -> dict[str, Path]:
    """Every module under the top-level directories ``tops``, by dotted name."""
    return {
        module_name(path, root): path
        for top in tops
        for path in sorted((root / top).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def imports_of(name: str, path: Path) -> Iterator[Import]:
    """Every module name ``path`` imports. ``from package import name`` yields the
    package and ``package.name`` as well, since ``name`` may be a submodule: a caller
    keeps only names that are modules (see :func:`own_module`)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield Import(name, module, node.lineno)
            for alias in node.names:
                yield Import(name, f"{module}.{alias.name}", node.lineno)


def own_module(target: str, known: Iterable[str] | dict[str, Path]) -> str | None:
    """The longest known module that ``target`` names or lies in (``a.b.C`` -> ``a.b``),
    or None for the standard library and third-party packages."""
    while target:
        if target in known:
            return target
        target = target.rpartition(".")[0]
    return None


def graph(tops: Iterable[str], root: Path = ROOT) -> dict[str, dict[str, int]]:
    """The project's own modules and, for each, the project modules it imports with the
    first line that does (a module importing itself, or its own package, is left out)."""
    mods = modules(tops, root)
    edges: dict[str, dict[str, int]] = {name: {} for name in mods}
    for name, path in mods.items():
        for imp in imports_of(name, path):
            target = own_module(imp.target, mods)
            if target is not None and target != name and not name.startswith(target + "."):
                edges[name].setdefault(target, imp.line)
    return edges


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        # Recursion depth is bounded by the longest import chain (tens of modules).
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found
