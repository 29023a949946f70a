"""Scans of one device are committed in the order they were read, whatever their parse cost.

Every frame but a cn20 code is parsed on the parse thread, a cn20 code on the
loop at once; so a GS1 carton read before a cn20 box could be committed after
it.  Capture order is the outbox's ``seq``, and ``bill undo`` takes the last
scan off a bill by it: the box scanned second must never come first.  Other
devices must not wait for one device's slow frame (that is what the parse
thread is for).  The parse thread is given a parser that holds one frame until
the test says so, so the interleaving is forced, not timed.
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

GS1 = b"]d2010690123456789217280500104711\x1d21ORDER1"
BOX = b"81234560000000011234"
OTHER_BOX = b"81234560000000022345"


def held_parser(frame: bytes, release: threading.Event, reached: threading.Event) -> Any:
    """The real parser, except that ``frame`` waits until ``release`` is set."""

    def parse(data: bytes) -> ScanResult:
        if data == frame:
            reached.set()
            release.wait(30)
        return parse_scan(data)

    return parse


async def test_a_devices_scans_commit_in_read_order_and_other_devices_do_not_wait(
    make_config: Callable[..., AgentConfig], start_agent: Callable[..., Any]
) -> None:
    cfg = make_config(sync={"enabled": False})
    agent = await start_agent(cfg)
    intake = agent.daemon.intake
    assert intake is not None
    release, reached = threading.Event(), threading.Event()
    intake.parser = ParseWorker(held_parser(GS1, release, reached))
    try:
        carton = asyncio.create_task(intake.submit(RawScan(GS1, "tcp:test", "dev-a", utc_now())))
        await asyncio.to_thread(reached.wait, 30)  # the carton is on the parse thread
        box = asyncio.create_task(intake.submit(RawScan(BOX, "tcp:test", "dev-a", utc_now())))
        # Another device's box is committed while dev-a's carton is still being parsed.
        other = await intake.submit(RawScan(OTHER_BOX, "tcp:test", "dev-b", utc_now()))
        assert other.verdict is Verdict.ACCEPTED
        assert not box.done()
        release.set()
        outcomes = [await carton, await box]
    finally:
        release.set()
        intake.parser.close()
    assert [o.verdict for o in outcomes] == [Verdict.ACCEPTED, Verdict.ACCEPTED]
    with Outbox.open_readonly(cfg.outbox.path) as outbox:
        rows = outbox.rows(limit=10)
    assert [r.raw for r in rows] == [OTHER_BOX.decode(), GS1.decode(), BOX.decode()]
