"""The parse thread: round-robin across connections, a bounded queue, faults contained.

Real threads and the real parser on worst-case frames (bracketed GS1 with
repeated AIs, the costliest shape for the parser): no timing is asserted,
only the order in which the thread finishes the submitters' work.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from scanner_agent.codes import ScanResult, parse_scan
from scanner_agent.intake import _cheap
from scanner_agent.parse_worker import ParseWorker

WORST = ("(01)06901234567892(21)ABC" + "(91)X" * 900)[:4096].encode()
"""A 4 KiB GS1 frame the parser must read to its end to refuse."""


async def test_a_scanners_frame_waits_behind_one_frame_per_flooding_connection_not_the_flood() -> (
    None
):
    gate = threading.Event()
    order: list[bytes] = []

    def parse(frame: bytes) -> ScanResult:
        if frame == b"GATE":  # holds the thread until every submission is queued
            gate.wait(30)
        order.append(frame[:1])
        return parse_scan(frame)

    worker: ParseWorker[ScanResult] = ParseWorker(parse)
    try:
        first = asyncio.ensure_future(worker.parse(("tcp", "gate"), [b"GATE"]))
        floods = [
            asyncio.ensure_future(worker.parse(("tcp", f"10.0.0.{i}:1"), [b"%d" % i + WORST] * 256))
            for i in range(8)
        ]
        good = asyncio.ensure_future(
            worker.parse(("tcp", "10.0.0.99:1"), [b"]d2010690123456789217280500104711\x1d21A1"])
        )
        await asyncio.sleep(0)  # every submission is queued behind the gate
        gate.set()
        (result,) = await good
        assert result.valid
        # The gate, then one frame of each flooding connection, then the scanner's frame.
        assert order.index(b"]") == 1 + 8
        assert sorted(order[1:9]) == [b"%d" % i for i in range(8)]
        results = await asyncio.gather(*floods, first)
        assert all(len(r) == 256 and not r[0].valid for r in results[:8])
        assert worker.parsed == 8 * 256 + 2
    finally:
        gate.set()
        worker.close()


async def test_the_queue_is_bounded_and_submitters_wait_for_room() -> None:
    peak = 0
    worker: ParseWorker[ScanResult]

    def parse(frame: bytes) -> ScanResult:
        nonlocal peak
        peak = max(peak, worker.queued)
        return parse_scan(frame)

    worker = ParseWorker(parse, max_queued=10)
    try:
        jobs = [worker.parse(("tcp", str(i)), [WORST] * 4) for i in range(6)]
        results = await asyncio.gather(*jobs)
        assert [len(r) for r in results] == [4] * 6
        assert 0 < peak <= 10
    finally:
        worker.close()


async def test_results_are_those_of_the_parser_in_order() -> None:
    frames = [b"81234560000000011234", WORST, b"", b"MA.156.M0.100000.1", b"\xff\x00"]
    worker: ParseWorker[ScanResult] = ParseWorker(parse_scan)
    try:
        assert await worker.parse(("replay", "-"), frames) == [parse_scan(f) for f in frames]
    finally:
        worker.close()


async def test_a_parser_fault_fails_its_submission_only() -> None:
    def parse(frame: bytes) -> ScanResult:
        if frame == b"boom":
            raise ValueError("parser bug")
        return parse_scan(frame)

    worker: ParseWorker[ScanResult] = ParseWorker(parse)
    try:
        with pytest.raises(ValueError, match="parser bug"):
            await worker.parse(("tcp", "a"), [b"x", b"boom"])
        assert [r.valid for r in await worker.parse(("tcp", "b"), [WORST])] == [False]
    finally:
        worker.close()


def test_only_cn20_shaped_frames_are_parsed_on_the_event_loop() -> None:
    assert _cheap(b"81234560000000011234")
    assert _cheap(b"01234567890123456789")  # 20 digits: as cheap to refuse
    assert not _cheap(b"8123456000000001123")
    assert not _cheap(WORST)
    assert not _cheap(b"]d2" + b"0" * 17)
