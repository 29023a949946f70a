"""The one way a test waits: poll a condition until it holds, with a deadline.

Tests never sleep for a fixed time hoping the other side has caught up; they wait on a
condition, and a condition that never comes fails the test with what it waited for.
:func:`eventually` is for coroutines (it yields to the event loop between polls, or to
``pause``, such as a Textual pilot's); :func:`wait_for` is the same for plain threads
and subprocesses.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

WAIT_S = 20.0
"""How long a condition may take by default: generous, since a loaded CI box is slow and a
condition that holds returns at once anyway."""

POLL_S = 0.01
"""The pause between two polls."""


async def eventually(
    condition: Callable[[], object | Awaitable[object]],
    within: float = WAIT_S,
    what: str = "",
    *,
    pause: Callable[[float], Awaitable[object]] | None = None,
) -> Any:
    """Poll ``condition`` (a function, or a coroutine function) until it returns something
    truthy, and return that; fail naming ``what`` once ``within`` seconds have passed.
    ``pause`` replaces :func:`asyncio.sleep` between polls (a Textual pilot's ``pause``
    lets the app handle its messages)."""
    deadline = time.monotonic() + within
    while True:
        got = condition()
        if inspect.isawaitable(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what or condition}")
        await (pause or asyncio.sleep)(POLL_S)


def wait_for(condition: Callable[[], object], within: float = WAIT_S, what: str = "") -> Any:
    """:func:`eventually` for code outside an event loop (it blocks the calling thread)."""
    deadline = time.monotonic() + within
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what or condition}")
        time.sleep(POLL_S * 2)
