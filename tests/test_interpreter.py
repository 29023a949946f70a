"""``tune_interpreter``: the process-wide settings ``scanner-agent run`` starts with.

Checked in a child interpreter: the settings are process-wide and would
otherwise change the test process itself.
"""

from __future__ import annotations

import json
import subprocess
import sys

from scanner_agent.interpreter import GC_THRESHOLDS, GIL_SWITCH_INTERVAL_S

_PROBE = """
import gc, json, sys
from scanner_agent.interpreter import tune_interpreter
before = gc.get_freeze_count()
tune_interpreter()
first = gc.get_freeze_count()
tune_interpreter()
print(json.dumps({
    "switch": sys.getswitchinterval(), "thresholds": gc.get_threshold(),
    "frozen_before": before, "frozen": first, "frozen_again": gc.get_freeze_count(),
}))
"""


def test_settings_and_a_single_freeze_per_process() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    got = json.loads(out.stdout)
    assert got["switch"] == GIL_SWITCH_INTERVAL_S
    assert tuple(got["thresholds"]) == GC_THRESHOLDS
    assert got["frozen_before"] == 0
    assert got["frozen"] > 0  # start-up's objects are out of the collector's sight
    assert got["frozen_again"] == got["frozen"]  # the second call froze nothing more
