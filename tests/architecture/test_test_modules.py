"""Tests share code through ``tests/support`` (and a directory's own helper modules), never by
importing another test module or a ``conftest.py``: a test file is a list of behaviours, and
borrowing a constant from one couples two checks that have nothing to do with each other (and
makes pytest collect the borrowed module twice, under two names, when paths differ)."""

from __future__ import annotations

from tests.support.imports import imports_of, modules, own_module


def _is_test_module(name: str) -> bool:
    last = name.rpartition(".")[2]
    return last.startswith("test_") or last == "conftest"


def test_no_test_code_imports_a_test_module_or_a_conftest() -> None:
    tests = modules(("tests",))
    bad = sorted(
        f"{name}:{imp.line} imports {target}"
        for name, path in tests.items()
        for imp in imports_of(name, path)
        if (target := own_module(imp.target, tests)) is not None
        and target != name
        and _is_test_module(target)
    )
    assert bad == []


def test_one_polling_helper() -> None:
    """Every deadline-polling loop is :func:`tests.support.polling.eventually` or
    :func:`~tests.support.polling.wait_for`: no test module defines its own."""
    import ast

    own = sorted(
        f"{name}:{node.lineno} defines {node.name}"
        for name, path in modules(("tests",)).items()
        if not name.startswith("tests.support.")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name.lstrip("_") in {"eventually", "until", "wait_until", "wait_for"}
    )
    assert own == []
