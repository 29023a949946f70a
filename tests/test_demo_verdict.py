"""The demo's verdict tells the truth about the good-read promise (issue 15, section 2).

``OK`` only when every accepted scan was delivered; refusals the platform alone
could know are listed and still succeed; a scan that was ACKed and later
refused for a reason the agent knew at scan time fails the demo (exit 1).
"""

from __future__ import annotations

import io
from pathlib import Path

from scanner_agent.cli.output import EXIT_FAILED, EXIT_OK
from scanner_agent.daemon import Daemon
from scanner_agent.lab.demo import DemoSummary, format_summary, run_demo


def test_each_verdict_and_its_words() -> None:
    delivered = DemoSummary(accepted=5, delivered=5, service_events=5)
    assert (delivered.verdict, delivered.ok) == ("ok", True)
    assert "OK: all 5 accepted scans were delivered" in format_summary(delivered)
    platform = DemoSummary(
        accepted=5, delivered=4, service_events=4, service_rejected={"code not registered": 1}
    )
    assert (platform.verdict, platform.ok) == ("platform_refused", True)
    line = format_summary(platform).splitlines()[-1]
    assert "SETTLED: 4 of 5 accepted scans delivered, 1 refused by the platform" in line
    assert "OK" not in line
    known = DemoSummary(
        accepted=5,
        delivered=3,
        service_events=3,
        service_rejected={"码上放心 takes only 20-digit trace codes": 2},
        acked_then_refused={"码上放心 takes only 20-digit trace codes": 2},
    )
    assert (known.verdict, known.ok) == ("acked_then_refused", False)
    text = format_summary(known)
    assert "FAILED: 2 scans were ACKed, then refused for a reason the agent knew" in text
    assert "ACKed, then refused for a reason the agent knew at scan time" in text
    queued = DemoSummary(accepted=5, delivered=3, still_queued=2, service_events=3)
    assert (queued.verdict, queued.ok) == ("incomplete", False)
    assert "INCOMPLETE: 2 still queued" in format_summary(queued)
    lost = DemoSummary(accepted=5, delivered=5, service_events=4)  # the service lacks one
    assert (lost.verdict, lost.ok) == ("incomplete", False)
    # OK and SETTLED exit 0; FAILED and INCOMPLETE exit 1, the operation failed (not 3: the
    # demo checks the agent's own path, not an input of the operator's).
    assert [s.exit_status for s in (delivered, platform, known, queued, lost)] == [
        EXIT_OK, EXIT_OK, EXIT_FAILED, EXIT_FAILED, EXIT_FAILED,
    ]  # fmt: skip


async def test_a_scan_acked_against_the_sinks_rule_fails_the_demo(tmp_path: Path) -> None:
    # The intake stops asking the sink (as before issue 15): the simulated handheld's GS1
    # codes are ACKed, 码上放心 cannot take them, and the demo must say so and fail.
    def unguarded(daemon: Daemon) -> None:
        assert daemon.intake is not None
        daemon.intake.admit = None

    summary = await run_demo(
        60, workdir=tmp_path, out=io.StringIO(), protocol="alihealth", on_ready=unguarded
    )
    assert summary.verdict == "acked_then_refused"
    assert summary.ok is False
    assert summary.exit_status == EXIT_FAILED
    known = summary.acked_then_refused
    assert sum(known.values()) > 0
    assert all(why in summary.service_rejected for why in known)
    assert set(known) == {"码上放心 takes only 20-digit trace codes"}
    assert summary.service_rejected[next(iter(known))] == sum(known.values())
    assert "FAILED:" in format_summary(summary)
