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

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_pool = b""
_pos = 0
_POOL_BYTES = 8 * 1024


def _random8() -> int:
    """64 random bits from the pool (refilled from the OS); caller holds the lock."""
    global _pool, _pos
    if _pos + 8 > len(_pool):
        _pool, _pos = os.urandom(_POOL_BYTES), 0
    value = int.from_bytes(_pool[_pos : _pos + 8], "big")
    _pos += 8
    return value


def uuid7() -> str:
    """A new UUIDv7 string, monotonic within this process (RFC 9562 method 1 counter)."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            # Same millisecond (or the clock stepped back): bump the 12-bit counter,
            # borrowing the next millisecond when it overflows, so ids stay ordered.
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:
                ms += 1
                _counter = 0
        else:
            _counter = _random8() & 0x3FF  # random start, with headroom below 0xFFF
        _last_ms = ms
        counter = _counter
        rand = _random8() & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
