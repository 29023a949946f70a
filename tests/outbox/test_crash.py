"""kill -9 at random moments never loses or doubles an acknowledged scan."""

from __future__ import annotations

from pathlib import Path

from tests.outbox.crashloop import check, run_crash_cycles


def test_every_acked_scan_is_held_once_after_twenty_random_sigkills(tmp_path: Path) -> None:
    report, server = run_crash_cycles(tmp_path, cycles=20)
    try:
        figures = check(report, server, tmp_path / "outbox.db")
    finally:
        server.stop()
    assert figures["cycles"] == 20
    # Meaningful only if kills landed while scans were being acknowledged: three cycles
    # in four wait for the first ACK before their random kill.
    assert figures["acked"] > 0
    assert report.cycles - report.kills_before_first_ack >= 15
