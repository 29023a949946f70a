"""Counted nouns, for every message that says how many of something there are.

The kernel holds the rule so each layer that words a count (a bill's log in the
outbox, ``doctor`` and ``check-config``, the command line) says ``1 scan`` and
``2 scans`` alike, without importing the command line's output module.
"""

from __future__ import annotations

__all__ = ["plural"]


def plural(n: int, noun: str, plural_noun: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``0 rows``; ``plural(2, "entry", "entries")``.

    >>> plural(1, "scan"), plural(0, "scan"), plural(3, "entry", "entries")
    ('1 scan', '0 scans', '3 entries')
    """
    return f"{n} {noun if n == 1 else (plural_noun or noun + 's')}"
