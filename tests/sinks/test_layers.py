"""The sync and sink layers keep their contracts, read from every import in the source
(module level, inside functions and under ``TYPE_CHECKING`` alike):

* a package's private modules (``_x.py``) are imported only from inside it;
  everyone else uses its ``__all__``;
* ``scanner_agent.sync`` never imports a sink package, and nothing below the
  CLI imports the lab (emulators, demo, simulator), which only tests, benches
  and the ``demo`` command may load.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWNED = (
    "scanner_agent.sync",
    "scanner_agent.sinks",
    "scanner_agent.sinks.trace_api",
    "scanner_agent.sinks.alihealth",
    "scanner_agent.sinks.epcis",
    "scanner_agent.lab",
    "scanner_agent.exports",
)
"""The packages this contract covers."""


def _modules() -> Iterator[tuple[str, Path]]:
    for top in ("scanner_agent", "drivers", "bench", "tests"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def _imports(name: str, path: Path) -> Iterator[str]:
    """Every module name ``path`` imports, relative imports resolved."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield module
            # ``from package import _private`` names a private module too.
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _owner(module: str) -> str | None:
    """The covered package whose private module ``module`` is (``a.b._c`` -> ``a.b``)."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            owner = ".".join(parts[:i])
            return owner if owner in OWNED else None
    return None


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_no_private_module_of_these_packages_is_imported_from_outside() -> None:
    bad = []
    for name, path in _modules():
        for target in _imports(name, path):
            owner = _owner(target)
            if owner is not None and not _within(name, owner):
                bad.append(f"{name} imports {target}")
    assert bad == []


def test_the_sync_layer_imports_no_sink_and_only_lab_users_import_the_lab() -> None:
    lab_users = ("scanner_agent.lab", "scanner_agent.traceserver", "tests", "bench")
    upward, lab = set(), set()
    for name, path in _modules():
        for target in _imports(name, path):
            if _within(name, "scanner_agent.sync") and _within(target, "scanner_agent.sinks"):
                upward.add(f"{name} imports {target}")
            if _within(target, "scanner_agent.lab") and not any(
                _within(name, user) for user in lab_users
            ):
                lab.add(name)
    assert upward == set()
    # The one door from the product to the lab: the `demo` command, imported when it runs.
    assert lab == {"scanner_agent.cli"}
