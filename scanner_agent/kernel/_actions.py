"""The words every layer shares for what a scan reports: the warehouse movements.

The config (``scan.action``, a source's ``action``), the bill types, the outbox
rows, the Trace API v1 batches and the reference trace service all speak this
one list, so it lives at the bottom where each of them can read it.
"""

from __future__ import annotations

__all__ = ["ACTIONS"]

ACTIONS: tuple[str, ...] = (
    "receive",
    "ship",
    "return",
    "sale",
    "destroy",
    "transfer",
    "stocktake",
    "produce",
    "purchase",
    "dispense",
)
"""Warehouse movements a scan can report (Trace API v1 ``action``)."""
