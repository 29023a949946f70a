"""More kill -9 cycles than the test suite runs (default 100), with figures.

Last stdout line: one JSON object (cycles, sent, acked, service_events,
committed_not_acked, kills_before_first_ack, seconds).  Exits non-zero if an
ACKed scan was lost or a scan was delivered twice.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.outbox.crashloop import check, run_crash_cycles


def main() -> None:
    cycles = int(os.environ.get("BENCH_CRASH_CYCLES", "100"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-crash-") as tmp:
        report, server = run_crash_cycles(Path(tmp), cycles, seed=int(time.time()))
        try:
            figures = check(report, server, Path(tmp) / "outbox.db")
        finally:
            server.stop()
    figures["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps({"benchmark": "crash", **figures}))


if __name__ == "__main__":
    main()
