"""Many rows in one SQLite statement: ``INSERT … SELECT … FROM (VALUES …)`` with size classes.

Why (measured, docs/performance.md): every ``sqlite3_step`` gives the GIL up
and must win it back from a busy event loop, so ``executemany`` (one step per
row) or ``RETURNING`` (one step per returned row) is slow beside another busy
thread, while one multi-row statement is one step.  But compiling a statement
of a thousand rows costs about as much as running it, and SQLite's statement
cache is keyed by the SQL text: so a batch's row count is rounded up to a size
class (exact up to 64, then multiples of 64) and the extra rows are padding,
which the statement's ``WHERE column1 <> ''`` drops (the first column must be
a non-empty text in real rows).

No parameter is ever ``None``: Python's sqlite3 binds ``str``, ``int`` and
``float`` directly, but sends every other value, ``None`` included, through
its adapter protocol, which looks up ``__adapt__`` and ``__conform__`` and
formats and discards an ``AttributeError`` for each: about half the cost of a
row with six empty fields, all of it holding the GIL (measured with
callgrind, docs/performance.md).  So ``None`` is bound as ``''`` and the
statement turns it back into NULL with ``NULLIF`` in the nullable columns
(:func:`select_list`); in those columns an empty text means absent.  Used by
the outbox and by the reference trace service.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from itertools import chain

SIZE_STEP = 64
MAX_VARIABLES = 32766
"""SQLite's default limit on bound parameters per statement."""
NULL = ""
"""What is bound in place of ``None`` (and in padding rows)."""


def size_class(n: int) -> int:
    """The VALUES row count used for ``n`` rows: exact up to 64, then the next multiple of 64."""
    return n if n <= SIZE_STEP else -(-n // SIZE_STEP) * SIZE_STEP


def max_rows(width: int) -> int:
    """Most rows of ``width`` values whose size class still fits the parameter limit."""
    return MAX_VARIABLES // width // SIZE_STEP * SIZE_STEP


def select_list(width: int, nullable: Collection[int] = ()) -> str:
    """The VALUES columns to select, ``NULLIF(columnN, '')`` for the 0-based ``nullable`` ones."""
    return ", ".join(
        f"NULLIF(column{i + 1}, '')" if i in nullable else f"column{i + 1}" for i in range(width)
    )


def values_clause(rows: int, width: int) -> str:
    """``(VALUES (?, …), …)`` for ``rows`` rows of ``width`` parameters, and the padding filter."""
    row = "(" + ", ".join("?" * width) + ")"
    return f"(VALUES {', '.join([row] * rows)}) WHERE column1 <> ''"


def padded_params(rows: Sequence[Iterable[object]], width: int) -> tuple[int, list[object]]:
    """The size class for ``rows`` and their values flattened, ``None`` as ``''``, padded."""
    size = size_class(len(rows))
    params: list[object] = [NULL if v is None else v for v in chain.from_iterable(rows)]
    params += [NULL] * (width * (size - len(rows)))
    return size, params
