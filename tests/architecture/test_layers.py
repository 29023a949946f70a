"""The layer contracts, read from every import in the library (module level, inside
functions and under ``TYPE_CHECKING`` alike, so a lazy import cannot hide a dependency).

The layers, lowest first, are :data:`LAYERS`: the one table of them, drawn in
docs/architecture.md. A module may import its own layer and the layers below, never one
above, with the doors of :data:`DOORS` as the only exceptions. On top of that:

* no import cycle anywhere (:func:`test_no_import_cycle`);
* the modules imported by name (``importlib.import_module``, from a table such as the source
  registry's factories) keep the same rules (:data:`BY_NAME`), no cycle included;
* a private module (``_x.py``, or a module inside a ``_x`` package) is imported only from
  inside the package that holds it; everyone else uses the package's ``__all__``;
* ``drivers`` imports only itself and the kernel (and the standard library and
  third-party packages): a driver knows the contract types, nothing of the agent;
* ``scanner_agent.sync`` never imports a sink package (a sink plugs into the loop);
* tests and benches, which may reach into a package's private modules to test them, do not
  for the sync, sink, lab and export packages, whose tests go through ``__all__``.

Why a test of our own rather than import-linter: it needs no dependency, reads lazy imports
the same as module-level ones, and states the underscore rule, which import-linter lacks.
"""

from __future__ import annotations

import fnmatch
import sys

from tests.support.imports import cycles, graph, imports_of, modules, own_module

LIBRARY = ("scanner_agent", "drivers")
"""The top-level packages of the library (what the wheel ships besides data)."""

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "kernel",
        (
            "scanner_agent",  # the package itself: its version, nothing else
            "scanner_agent.kernel",
            "scanner_agent.times",
            "scanner_agent.status",
            "scanner_agent.interpreter",
            "scanner_agent.sqlrows",
        ),
    ),
    (
        "parts",
        ("scanner_agent.codes", "scanner_agent.outbox", "drivers", "scanner_agent.parse_worker"),
    ),
    (
        "services",
        (
            "scanner_agent.intake",
            "scanner_agent.bills",
            "scanner_agent.sync",
            "scanner_agent.sinks",
            "scanner_agent.exports",
        ),
    ),
    ("config", ("scanner_agent.config",)),
    (
        "agent",
        (
            "scanner_agent.control",
            "scanner_agent.daemon",
            "scanner_agent.ops",
        ),
    ),
    (
        "front",
        ("scanner_agent.cli", "scanner_agent.tui", "scanner_agent.__main__"),
    ),
    ("lab", ("scanner_agent.lab", "scanner_agent.traceserver", "scanner_agent.asgi")),
)
"""Each layer's name and the modules in it, lowest first: a pattern names a module and
every module inside it (``scanner_agent.outbox`` covers ``scanner_agent.outbox._core``);
``*`` is a glob within one name. The most specific pattern wins. A new module or package
is placed here (and in docs/architecture.md's diagram) or the test fails."""

DOORS: dict[tuple[str, str], str] = {
    ("scanner_agent.cli", "scanner_agent.lab"): "the `demo` command runs the lab's demo",
    ("scanner_agent.cli", "scanner_agent.traceserver"): "the `trace-server` command serves it",
    ("scanner_agent.cli", "scanner_agent.asgi"): "the `trace-server` command names a busy port",
}
"""Upward imports allowed, (importer pattern, imported pattern): the CLI is the one door
from the product into the lab, and only in the commands that run lab code (imported when
the command runs, so no other command loads it)."""


def _pattern_of(module: str) -> str | None:
    """The most specific pattern of :data:`LAYERS` that covers ``module``."""
    best: str | None = None
    for _, patterns in LAYERS:
        for pattern in patterns:
            head = module.split(".")[: pattern.count(".") + 1]
            if fnmatch.fnmatchcase(".".join(head), pattern) and (
                best is None or pattern.count(".") > best.count(".")
            ):
                best = pattern
    return best


def _layer_of(module: str) -> int:
    pattern = _pattern_of(module)
    assert pattern is not None, f"{module} is in no layer: place it in LAYERS"
    return next(i for i, (_, patterns) in enumerate(LAYERS) if pattern in patterns)


def _covers(pattern: str, module: str) -> bool:
    head = module.split(".")[: pattern.count(".") + 1]
    return fnmatch.fnmatchcase(".".join(head), pattern)


EDGES = graph(LIBRARY)


def test_every_module_is_in_exactly_one_layer_and_every_pattern_names_a_module() -> None:
    unplaced = sorted(m for m in EDGES if _pattern_of(m) is None)
    assert unplaced == [], f"modules in no layer (place them in LAYERS): {unplaced}"
    patterns = [p for _, layer in LAYERS for p in layer]
    assert len(patterns) == len(set(patterns))
    stale = [p for p in patterns if not any(_covers(p, m) for m in EDGES)]
    assert stale == [], f"LAYERS names modules that no longer exist: {stale}"


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for importer, targets in EDGES.items():
        for target, line in targets.items():
            if _layer_of(target) <= _layer_of(importer):
                continue
            if any(_covers(a, importer) and _covers(b, target) for a, b in DOORS):
                continue
            upward.append(
                f"{importer}:{line} ({LAYERS[_layer_of(importer)][0]}) imports "
                f"{target} ({LAYERS[_layer_of(target)][0]})"
            )
    assert upward == []


def test_every_door_is_used() -> None:
    """A door nobody uses any more is closed (removed from :data:`DOORS`)."""
    used = {
        (a, b)
        for importer, targets in EDGES.items()
        for target in targets
        for a, b in DOORS
        if _covers(a, importer) and _covers(b, target)
    }
    assert set(DOORS) - used == set()


def test_the_kernel_imports_only_the_standard_library() -> None:
    kernel = [m for m in EDGES if _layer_of(m) == 0]
    mods = modules(LIBRARY)
    stdlib = sys.stdlib_module_names | {"__future__"}
    third_party = sorted(
        f"{name}:{imp.line} imports {imp.target}"
        for name in kernel
        for imp in imports_of(name, mods[name])
        if imp.target.split(".")[0] not in stdlib | set(LIBRARY)
    )
    assert third_party == []
    above = sorted(f"{m} imports {t}" for m in kernel for t in EDGES[m] if _layer_of(t) != 0)
    assert above == []


def test_drivers_import_only_drivers_and_the_kernel() -> None:
    bad = sorted(
        f"{importer}:{line} imports {target}"
        for importer, targets in EDGES.items()
        if importer.split(".")[0] == "drivers"
        for target, line in targets.items()
        if target.split(".")[0] != "drivers" and not _covers("scanner_agent.kernel", target)
    )
    assert bad == []


def test_sync_imports_no_sink() -> None:
    bad = sorted(
        f"{importer}:{line} imports {target}"
        for importer, targets in EDGES.items()
        if _covers("scanner_agent.sync", importer)
        for target, line in targets.items()
        if _covers("scanner_agent.sinks", target)
    )
    assert bad == []


def _private_owner(module: str) -> str | None:
    """The package a private module belongs to (``a.b._c.d`` -> ``a.b``), or None."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def test_no_private_module_is_imported_from_outside_its_package() -> None:
    bad = []
    for importer, targets in EDGES.items():
        for target, line in targets.items():
            owner = _private_owner(target)
            if owner is not None and not _covers(owner, importer):
                bad.append(f"{importer}:{line} imports {target}")
    assert bad == []


PUBLIC_ONLY = (
    "scanner_agent.sync",
    "scanner_agent.sinks",
    "scanner_agent.sinks.trace_api",
    "scanner_agent.sinks.alihealth",
    "scanner_agent.sinks.epcis",
    "scanner_agent.lab",
    "scanner_agent.exports",
)
"""Packages whose private modules not even the tests and benches import."""


def test_tests_and_benches_use_only_the_public_names_of_sync_sinks_lab_and_exports() -> None:
    library = modules(LIBRARY)
    bad = sorted(
        f"{name}:{imp.line} imports {imp.target}"
        for name, path in modules(("tests", "bench")).items()
        for imp in imports_of(name, path)
        if (target := own_module(imp.target, library)) is not None
        and _private_owner(target) in PUBLIC_ONLY
    )
    assert bad == []


def test_no_import_cycle() -> None:
    """No two modules import each other, directly or through others (lazy and
    ``TYPE_CHECKING`` imports counted): each cycle is printed with its modules."""
    assert cycles(EDGES) == []


BY_NAME: dict[str, str] = {
    "drivers.registry": "each source type's factory module and drivers.decode_options",
    "drivers.hotplug": "pyudev (third-party)",
    "drivers.usbhid": "PyUSB (third-party)",
    "drivers.wedge": "evdev (third-party)",
    "scanner_agent.ops.roles": "each role's modules and each source type's factory module",
    "scanner_agent.sinks._registry": "the sink package of sync.protocol (SINK_PACKAGES)",
    "scanner_agent.sinks._lazy": "what a sink package's lazy_exports table names, for it",
    "scanner_agent.cli.app": "the command modules (COMMANDS)",
}
"""The modules that import a module by its name (``importlib.import_module``), which the
:mod:`ast` graph cannot follow, and what they import: :func:`_imports_by_name` reads those
names from the tables that hold them, so the rules above hold for them too."""


def _calls_import_module(path: object) -> bool:
    import ast
    from pathlib import Path

    assert isinstance(path, Path)
    return any(
        isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            or (isinstance(node.func, ast.Name) and node.func.id == "import_module")
        )
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
    )


def _lazy_tables() -> dict[str, set[str]]:
    """Each package calling ``lazy_exports(__name__, {module: names})``: its modules."""
    import ast

    found: dict[str, set[str]] = {}
    for name, path in modules(LIBRARY).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id.lstrip("_") == "lazy_exports"
                and len(node.args) == 2
                and isinstance(node.args[1], ast.Dict)
            ):
                keys = node.args[1].keys
                assert all(isinstance(k, ast.Constant) for k in keys), f"{name}: a computed name"
                found.setdefault(name, set()).update(
                    f"{name}.{k.value}" for k in keys if isinstance(k, ast.Constant)
                )
    return found


def _imports_by_name() -> dict[str, dict[str, int]]:
    """The edges :data:`BY_NAME` adds to the graph, between the library's own modules (a
    lazily exported module counts as imported by the package whose table names it)."""
    from drivers.registry import SOURCE_TYPES
    from scanner_agent.cli.app import COMMANDS
    from scanner_agent.ops.roles import ROLES
    from scanner_agent.sinks import SINK_PACKAGES

    factories = {t.factory.partition(":")[0] for t in SOURCE_TYPES.values()}
    named: dict[str, set[str]] = {
        "drivers.registry": factories | {"drivers.decode_options"},
        "scanner_agent.ops.roles": factories | {m for r in ROLES for m in r.modules},
        "scanner_agent.sinks._registry": set(SINK_PACKAGES.values()),
        "scanner_agent.cli.app": set(COMMANDS),
        **_lazy_tables(),
    }
    edges: dict[str, dict[str, int]] = {}
    for importer, targets in named.items():
        for target in targets:
            own = own_module(target, EDGES)
            if own is not None and own != importer and not importer.startswith(own + "."):
                edges.setdefault(importer, {})[own] = 0
    return edges


def test_every_import_by_name_is_known() -> None:
    """A new ``importlib.import_module`` call is added to :data:`BY_NAME` (and its names to
    :func:`_imports_by_name`), so the graph stays the whole graph."""
    calling = {name for name, path in modules(LIBRARY).items() if _calls_import_module(path)}
    assert calling == set(BY_NAME)


def test_imports_by_name_keep_the_layers() -> None:
    """The same rules over the graph with the imports by name added: no upward import, no
    private module from outside its package, drivers on the kernel alone, no cycle."""
    by_name = _imports_by_name()
    assert by_name, "no import by name found: the tables moved?"
    merged = {m: {**EDGES[m], **by_name.get(m, {})} for m in EDGES}
    bad = sorted(
        f"{importer} imports {target} by name"
        for importer, targets in by_name.items()
        for target in targets
        if (
            _layer_of(target) > _layer_of(importer)
            or ((owner := _private_owner(target)) is not None and not _covers(owner, importer))
            or (
                importer.split(".")[0] == "drivers"
                and target.split(".")[0] != "drivers"
                and not _covers("scanner_agent.kernel", target)
            )
        )
    )
    assert bad == []
    assert cycles(merged) == [], "a cycle through an import by name"
