"""Event identities: UUIDv7 (RFC 9562), generated at capture time.

A UUIDv7 sorts by creation time and is unique across restarts and boxes, so
the trace service can use it as the event's primary key; unlike an SQLite
rowid it is never reused after a row is pruned.  Python 3.11 has no
``uuid.uuid7``, and this is twelve lines, so no dependency is taken.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


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
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave headroom
        _last_ms = ms
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    return str(uuid.UUID(int=value))
