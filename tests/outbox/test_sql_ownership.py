"""The outbox package is the only one that issues SQL on the outbox file (issue 18).

Every other package asks an :class:`~scanner_agent.outbox.Outbox` method (or a
:class:`~scanner_agent.outbox.BillStore` it hands out) and decides; none holds a
connection to the file.  The trace service's own database (``traceserver/``) is
another file and keeps its SQL.  Checked over the syntax tree of every module,
so an import or a call inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import scanner_agent

ROOT = Path(scanner_agent.__file__).parent
OWNERS = ("outbox", "traceserver")
"""Packages that hold SQL: the outbox file's, and the trace service's own database."""
SQL_CALLS = {"execute", "executemany", "executescript", "atomic", "cursor"}
"""Methods that run SQL on a connection, or hand one out (``Outbox.atomic``)."""


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if p.relative_to(ROOT).parts[0] not in OWNERS)


def _sql_uses(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] == "sqlite3"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlite3":
            found.append(f"from {node.module} import ...")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SQL_CALLS
        ):
            found.append(f"line {node.lineno}: .{node.func.attr}(...)")
    return found


def test_the_scan_covers_the_library() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _modules()}
    assert {
        "bills/_book.py",
        "ops/doctor.py",
        "cli/bills.py",
        "sinks/alihealth/_ledger.py",
    } <= names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_module_outside_the_outbox_issues_sql(path: Path) -> None:
    assert _sql_uses(path) == []


def test_the_check_finds_sql_where_there_is_some() -> None:
    # The rule itself, on the modules that own SQL: it must see theirs.
    assert _sql_uses(ROOT / "outbox" / "_bill_store.py")
    assert _sql_uses(ROOT / "traceserver" / "_store.py")
