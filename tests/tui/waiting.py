"""Waiting in Pilot tests for what the app does in its own time (never a fixed sleep)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot


async def until(pilot: Pilot[Any], cond: Callable[[], bool], what: str, within: float = 15) -> None:
    """Let the app run until ``cond()`` holds; fail naming ``what`` after ``within`` seconds."""
    for _ in range(int(within / 0.02)):
        if cond():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")
