"""Event identities: UUIDv7 (RFC 9562), generated at capture time.

A UUIDv7 sorts by creation time and is unique across restarts and boxes, so
the trace service can use it as the event's primary key; unlike an SQLite
rowid it is never reused after a row is pruned.  Python 3.11 has no
``uuid.uuid7``, and this is a few lines, so no dependency is taken.

It runs once per scan on the intake's hot path, so it formats the hex itself
(no ``uuid.UUID`` object) and draws randomness from a pooled ``os.urandom``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

__all__ = [
    "uuid7",
    "uuid7_many",
]

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_pool = b""
_pos = 0
_POOL_BYTES = 8 * 1024


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
"""First hex digit of the clock-sequence field: variant bits ``10`` over two random bits."""


def _random_hex(chars: int) -> str:
    """``chars`` random hex digits from the pool (refilled from the OS); caller holds the lock."""
    global _pool, _pos
    need = chars // 2
    if need > _POOL_BYTES:
        return os.urandom(need).hex()
    if _pos + need > len(_pool):
        _pool, _pos = os.urandom(_POOL_BYTES), 0
    out = _pool[_pos : _pos + need].hex()
    _pos += need
    return out


def uuid7(clock_ns: Callable[[], int] = time.time_ns) -> str:
    """A new UUIDv7 string, monotonic within this process (RFC 9562 method 1 counter)."""
    return uuid7_many(1, clock_ns)[0]


def uuid7_many(n: int, clock_ns: Callable[[], int] = time.time_ns) -> list[str]:
    """``n`` new UUIDv7 strings in increasing order, sharing :func:`uuid7`'s sequence.

    The intake asks for one id per scan of a whole read at once: one clock
    read, one lock and one slice of randomness for the lot, and the hex is
    assembled from string pieces instead of a 128-bit integer per id.

    Layout (RFC 9562 section 5.7, with the method 1 counter of section 6.2):
    48-bit Unix milliseconds, version 7, a 12-bit counter that orders ids of
    the same millisecond, variant ``10``, and 62 random bits.  ``clock_ns``
    reads the time (Unix nanoseconds); a test gives one that steps back.
    """
    global _last_ms, _counter
    ids: list[str] = []
    if n <= 0:
        return ids
    with _lock:
        ms = clock_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms  # same millisecond, or the clock stepped back: keep counting
            counter = _counter
        else:
            counter = -1  # a fresh millisecond starts at a random counter (below)
        rand = _random_hex(16 * n + 4)
        if counter < 0:
            counter = int(rand[-3:], 16) & 0x3FF  # random start, with headroom below 0xFFF
        else:
            counter += 1
        head = ""
        head_ms = -1
        for i in range(n):
            if counter > 0xFFF:
                # Counter overflow: borrow the next millisecond so ids stay ordered.
                ms += 1
                counter = 0
            if ms != head_ms:
                t = f"{ms & 0xFFFFFFFFFFFF:012x}"
                head = f"{t[:8]}-{t[8:]}-7"
                head_ms = ms
            j = 16 * i
            ids.append(
                f"{head}{counter:03x}-{_VARIANT[rand[j]]}{rand[j + 1 : j + 4]}-{rand[j + 4 : j + 16]}"
            )
            counter += 1
        _last_ms = ms
        _counter = counter - 1
    return ids
