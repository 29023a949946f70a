"""Many rows in one SQLite statement: ``INSERT … SELECT … FROM (VALUES …)`` with size classes.

Why (measured, docs/performance.md): every ``sqlite3_step`` gives the GIL up
and must win it back from a busy event loop, so ``executemany`` (one step per
row) or ``RETURNING`` (one step per returned row) is slow beside another busy
thread, while one multi-row statement is one step.  But compiling a statement
of a thousand rows costs about as much as running it, and SQLite's statement
cache is keyed by the SQL text: so a batch's row count is rounded up to a size
class (exact up to 64, then multiples of 64) and the extra rows are bound as
NULLs, which the statement's ``WHERE column1 IS NOT NULL`` drops (the first
column must be NOT NULL in real rows).  Used by the outbox and by the
reference trace service.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain

SIZE_STEP = 64
MAX_VARIABLES = 32766
"""SQLite's default limit on bound parameters per statement."""


def size_class(n: int) -> int:
    """The VALUES row count used for ``n`` rows: exact up to 64, then the next multiple of 64."""
    return n if n <= SIZE_STEP else -(-n // SIZE_STEP) * SIZE_STEP


def max_rows(width: int) -> int:
    """Most rows of ``width`` values whose size class still fits the parameter limit."""
    return MAX_VARIABLES // width // SIZE_STEP * SIZE_STEP


def values_clause(rows: int, width: int) -> str:
    """``(VALUES (?, …), …)`` for ``rows`` rows of ``width`` parameters, and the filter."""
    row = "(" + ", ".join("?" * width) + ")"
    return f"(VALUES {', '.join([row] * rows)}) WHERE column1 IS NOT NULL"


def padded_params(rows: Sequence[Iterable[object]], width: int) -> tuple[int, list[object]]:
    """The size class for ``rows`` and their values flattened, padded with NULL rows."""
    size = size_class(len(rows))
    params: list[object] = list(chain.from_iterable(rows))
    params += [None] * (width * (size - len(rows)))
    return size, params
