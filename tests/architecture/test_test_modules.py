"""Tests share code through ``tests/support`` (and a directory's own helper modules), never by
importing another test module or a ``conftest.py``: a test file is a list of behaviours, and
borrowing a constant from one couples two checks that have nothing to do with each other (and
makes pytest collect the borrowed module twice, under two names, when paths differ)."""

from __future__ import annotations

import ast

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
    own = sorted(
        f"{name}:{node.lineno} defines {node.name}"
        for name, path in modules(("tests",)).items()
        if not name.startswith("tests.support.")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name.lstrip("_") in {"eventually", "until", "wait_until", "wait_for"}
    )
    assert own == []


def test_one_free_port_helper() -> None:
    """A free loopback port comes from :func:`tests.support.net.free_port` alone."""
    own = sorted(
        f"{name}:{node.lineno} defines {node.name}"
        for name, path in modules(("tests",)).items()
        if name != "tests.support.net"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name.lstrip("_") == "free_port"
    )
    assert own == []


DEADLINE_LOOPS = {
    "tests.support.polling": "the one polling helper itself",
    "tests.ops.test_health": "it blocks the daemon's event loop on purpose while it waits",
    "tests.ops.test_installed": "it reads a pty with select() until its deadline, typing on cue",
    "tests.outbox.crashloop": "the final drain is judged by its caller, not failed at the deadline",
}
"""Modules that may compute a deadline of their own (``time.monotonic() + ...``), each with why
neither :func:`~tests.support.polling.eventually` nor :func:`~tests.support.polling.wait_for` fits."""


def _is_monotonic_call(node: object) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "monotonic"
    )


def test_no_inline_deadline_loop() -> None:
    """A wait written inline (``deadline = time.monotonic() + 5`` and a ``while`` loop) is the
    polling helper again, without its failure message: only :data:`DEADLINE_LOOPS` may."""
    own = sorted(
        f"{name}:{node.lineno}"
        for name, path in modules(("tests",)).items()
        if name not in DEADLINE_LOOPS
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Add)
        and (_is_monotonic_call(node.left) or _is_monotonic_call(node.right))
    )
    assert own == [], f"wait with tests.support.polling instead: {own}"


def test_every_listed_deadline_loop_still_has_one() -> None:
    """A module that no longer computes a deadline leaves :data:`DEADLINE_LOOPS`."""
    tests = modules(("tests",))
    stale = sorted(m for m in DEADLINE_LOOPS if "monotonic()" not in tests[m].read_text("utf-8"))
    assert stale == []
