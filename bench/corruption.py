"""Corruption fuzzing, the long run: thousands of random damages to a real outbox and its WAL.

Each case (tests/outbox/corruption.py) damages a copy of one outbox image
(bit flips, random byte runs, truncation, a zeroed page or WAL frame, a damaged
WAL header), then opens it, leases and settles everything, exports, and salvages
any file moved aside, and checks: no crash, every undamaged owed scan delivered (as
tests/outbox/corruption.py defines it), no owed scan lost without a report, no code
delivered altered.  BENCH_CASES (default 2,000) cases from BENCH_SEED (0).

Prints progress to stderr, and as its last stdout line one JSON object.  Not part
of the test suite.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.outbox.corruption import build_image, run_case, summarize

CASES = int(os.environ.get("BENCH_CASES", "2000"))
SEED = int(os.environ.get("BENCH_SEED", "0"))


def main() -> None:
    logging.disable(logging.CRITICAL)  # each damaged case logs its alarms
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        image = build_image(Path(tmp))
        results = []
        for i in range(CASES):
            r = run_case(image, Path(tmp) / "case", SEED + i)
            results.append(r)
            if r.failed:
                print(f"seed {r.seed} {r.kind} {r.where}: {r}", file=sys.stderr)
            if (i + 1) % 100 == 0:
                print(f"{i + 1} cases", file=sys.stderr)
    figures = summarize(results, len(image.owed))
    print(
        json.dumps(
            {
                "benchmark": "corruption",
                "seed": SEED,
                **figures,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
