"""Process-wide interpreter settings for the agent and the reference trace service."""

from __future__ import annotations

import atexit
import gc
import sys
from typing import Final

GIL_SWITCH_INTERVAL_S: Final = 0.0005
"""The thread switch interval while the agent or the service runs (Python's default is 5 ms)."""

GC_THRESHOLDS: Final = (10_000, 10, 10)
"""Allocations between young-generation collections, and the older generations' ratios
(Python's default is ``(700, 10, 10)``)."""


def tune_interpreter() -> None:
    """Let threads that wait in SQLite win the GIL back sooner, and collect garbage less often.

    ``scanner-agent run`` and ``scanner-agent trace-server`` call this at
    start, once their main modules are imported; a ``Daemon`` run inside
    another program (a test, the demo) leaves that program's settings alone.

    GIL: every SQLite call on a worker thread (the agent's outbox thread, the
    trace service's request workers) releases the GIL, and when it returns it
    must wait until the event loop's thread, busy parsing the next reads or
    requests, reaches the switch interval.  A group commit gives the GIL up
    several times (the executor's wake-up, the free-space check, the
    statement, the hand-back to the loop), so at Python's default 5 ms the
    waits are as long as the commit itself.  Measured with bench/ingest.py on
    2 cores: 59k scans/s at 5 ms, 68-69k at 1 ms; with the collector tuned
    below, 1 ms -> 0.5 ms gave a further 13% and 0.2 ms no more than 0.5 ms.

    Garbage collector: the intake builds a few tuples per scan and keeps
    thousands in flight between the read and the commit, so with the default
    threshold of 700 a young collection ran every few reads and kept promoting
    live scans into older generations that are then traversed again; the
    collector took about a tenth of both threads' time (py-spy).  At 10,000
    the young collections are fourteen times rarer and each still small (a
    few MB at most).  :func:`gc.freeze` moves what start-up built (modules,
    classes, configuration) out of the collector's sight, once per process
    and after a collection, so the rare full collections do not walk it.  Nothing here turns collection off: cycles are
    still found, only later.  Measured together: 119-121k -> 161-167k
    scans/s (docs/performance.md).
    """
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    gc.set_threshold(*GC_THRESHOLDS)
    global _frozen
    if not _frozen:  # once per process (tests start many daemons in one)
        _frozen = True
        gc.collect()  # start-up's garbage is freed, not frozen
        gc.freeze()
        # Frozen objects are not collected at exit; extension modules that
        # check for leaks at shutdown (nanobind's zxing-cpp) would complain.
        atexit.register(gc.unfreeze)


_frozen = False
