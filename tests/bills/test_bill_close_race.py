"""A bill closing while a scan is on its way to the outbox never gets that scan afterwards.

The intake decides a scan's bill, the sink's admission asks whether the bill is
open, and the row is committed later (after parsing, in a group commit).  When
``bill close`` lands in between, the scan used to be committed onto the bill
that had just closed: ACKed at the scanner, missing from the bill's closing
totals, and dead-lettered by 码上放心 later ("after its upload began").  The
promise: every ACKed scan of a bill is in the bill as it closed.

The parse thread is given a parser that waits for the test's word on one
frame, so the interleaving is forced rather than hoped for (no timing).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from scanner_agent.codes import ScanResult, parse_scan
from scanner_agent.config import AgentConfig
from scanner_agent.kernel import RawScan, Verdict, utc_now
from scanner_agent.outbox import Outbox
from scanner_agent.parse_worker import ParseWorker

GS1 = b"]d2010690123456789217280500104711\x1d21RACE1"
"""A GS1 frame: it goes through the parse thread, where the test can hold it."""


def held_parser(frame: bytes, release: threading.Event, reached: threading.Event) -> Any:
    """The real parser, except that ``frame`` waits until ``release`` is set."""

    def parse(data: bytes) -> ScanResult:
        if data == frame:
            reached.set()
            release.wait(30)
        return parse_scan(data)

    return parse


async def test_a_scan_in_flight_when_its_bill_closes_is_never_committed_onto_the_closed_bill(
    make_config: Callable[..., AgentConfig], start_agent: Callable[..., Any]
) -> None:
    cfg = make_config(sync={"enabled": False})
    agent = await start_agent(cfg)
    daemon = agent.daemon
    release, reached = threading.Event(), threading.Event()
    intake = daemon.intake
    assert intake is not None
    assert daemon.desk is not None
    intake.parser = ParseWorker(held_parser(GS1, release, reached))
    try:
        await daemon.desk.open("SO-RACE", 201, to_party="ent-customer")
        scan = asyncio.create_task(intake.submit(RawScan(GS1, "tcp:test", "t", utc_now())))
        await asyncio.to_thread(reached.wait, 30)  # the scan is being parsed
        closed = await daemon.desk.close("SO-RACE")
        release.set()
        outcome = await scan
    finally:
        release.set()
        intake.parser.close()

    with Outbox.open_readonly(cfg.outbox.path) as outbox:
        on_bill = [r for r in outbox.rows(limit=100) if r.bill == "SO-RACE"]
    assert closed.totals.scans == len(on_bill)  # nothing joined the bill after it closed
    if outcome.verdict is Verdict.ACCEPTED:  # then it went to the bill open now (the default)
        assert on_bill == []


async def test_scans_committed_before_the_close_are_all_in_the_closed_bill(
    make_config: Callable[..., AgentConfig], start_agent: Callable[..., Any]
) -> None:
    cfg = make_config(sync={"enabled": False})
    agent = await start_agent(cfg)
    daemon = agent.daemon
    assert daemon.desk is not None
    await daemon.desk.open("SO-FLUSH", 201, to_party="ent-customer")
    codes = [f"8123456{i:013d}" for i in range(50)]
    # Sent and not awaited: the close is asked for while scans are on their way.
    sends = [asyncio.create_task(agent.scan(*codes[i : i + 10])) for i in range(0, 50, 10)]
    await asyncio.sleep(0)
    closed = await daemon.desk.close("SO-FLUSH")
    replies = [r for rs in await asyncio.gather(*sends) for r in rs]
    acked = sum(r.startswith("ACK") for r in replies)
    with Outbox.open_readonly(cfg.outbox.path) as outbox:
        on_bill = [r for r in outbox.rows(limit=100) if r.bill == "SO-FLUSH"]
    assert closed.totals.scans == len(on_bill) <= acked
