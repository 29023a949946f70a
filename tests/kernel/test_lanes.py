"""Lanes (bounded executors of their own) and single-flight reads."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner_agent.kernel import Lane, LaneBusy, SingleFlight


async def test_a_full_lane_refuses_at_once_instead_of_queueing() -> None:
    lane = Lane("test-lane", workers=1, max_pending=3)
    gate = threading.Event()
    try:
        held = [asyncio.ensure_future(lane.run(gate.wait)) for _ in range(3)]
        await asyncio.sleep(0)
        assert lane.pending == 3
        with pytest.raises(LaneBusy, match=r"test-lane: 3 calls are waiting already \(at most 3\)"):
            await lane.run(gate.wait)
        assert lane.refused == 1
        gate.set()
        assert await asyncio.gather(*held) == [True, True, True]
        assert lane.pending == 0
        assert await lane.run(len, "abc") == 3
    finally:
        gate.set()
        await lane.aclose()


async def test_a_caller_that_gives_up_drops_its_call_if_it_has_not_started() -> None:
    lane = Lane("test-lane", workers=1, max_pending=2)
    gate = threading.Event()
    ran: list[str] = []
    try:
        running = asyncio.ensure_future(lane.run(gate.wait))
        waiting = asyncio.ensure_future(lane.run(ran.append, "late"))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert lane.pending == 1  # only the running call holds a slot now
        gate.set()
        assert await running is True
        await lane.run(ran.append, "next")
        assert ran == ["next"]
    finally:
        gate.set()
        await lane.aclose()


def test_a_lane_needs_sane_sizes() -> None:
    with pytest.raises(ValueError, match="workers"):
        Lane("x", workers=2, max_pending=1)


class Reads:
    """A fetch the test releases by hand, numbering each read."""

    def __init__(self) -> None:
        self.started = 0
        self.gates: list[asyncio.Event] = []
        self.open = False

    async def fetch(self) -> int:
        self.started += 1
        number = self.started
        gate = asyncio.Event()
        self.gates.append(gate)
        if not self.open:
            await gate.wait()
        return number

    def release_all(self) -> None:
        """This read and every later one return at once."""
        self.open = True
        for g in self.gates:
            g.set()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_many_callers_share_one_running_and_one_waiting_read() -> None:
    reads = Reads()
    flight: SingleFlight[int] = SingleFlight(reads.fetch)
    first = asyncio.ensure_future(flight.get())
    await settle()
    assert reads.started == 1
    # Callers arriving during read 1 need data from after their call: they all share read 2.
    later = [asyncio.ensure_future(flight.get()) for _ in range(50)]
    await settle()
    assert reads.started == 1
    reads.gates[0].set()
    assert await first == 1
    await settle()
    assert reads.started == 2
    reads.gates[1].set()
    assert await asyncio.gather(*later) == [2] * 50
    assert flight.runs == 2


async def test_callers_that_accept_an_older_value_share_the_running_read_or_the_last() -> None:
    reads = Reads()
    now = [100.0]
    flight: SingleFlight[int] = SingleFlight(reads.fetch, clock=lambda: now[0])
    first = asyncio.ensure_future(flight.get())
    await settle()
    now[0] += 0.5
    joined = asyncio.ensure_future(flight.get(max_age_s=1.0))
    await settle()
    reads.gates[0].set()
    assert (await first, await joined) == (1, 1)
    now[0] += 0.4  # the last read started 0.9 s ago
    assert await flight.get(max_age_s=1.0) == 1
    assert flight.runs == 1
    now[0] += 0.2  # now 1.1 s ago: too old
    fresh = asyncio.ensure_future(flight.get(max_age_s=1.0))
    reads.release_all()
    assert await fresh == 2


async def test_a_failed_read_reaches_its_waiters_and_is_not_reused() -> None:
    calls = 0

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk gone")
        return calls

    flight: SingleFlight[int] = SingleFlight(fetch)
    results = await asyncio.gather(flight.get(), flight.get(), return_exceptions=True)
    assert isinstance(results[0], OSError)
    assert await flight.get(max_age_s=60) == 2


async def test_a_waiter_that_gives_up_leaves_the_read_to_the_others() -> None:
    reads = Reads()
    flight: SingleFlight[int] = SingleFlight(reads.fetch)
    impatient = asyncio.ensure_future(flight.get())
    patient = asyncio.ensure_future(flight.get(max_age_s=10))
    await settle()
    impatient.cancel()
    await asyncio.gather(impatient, return_exceptions=True)
    reads.release_all()
    assert await patient == 1
    assert flight.runs == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.5, 5.0]), st.integers(0, 3)), max_size=40))
def test_any_mix_of_callers_never_runs_more_than_one_read_at_once(
    calls: list[tuple[float, int]],
) -> None:
    async def scenario() -> None:
        now = [0.0]
        live = 0
        most = 0
        order: list[float] = []

        async def fetch() -> float:
            nonlocal live, most
            live += 1
            most = max(most, live)
            started = now[0]
            order.append(started)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            live -= 1
            return started

        flight: SingleFlight[float] = SingleFlight(fetch, clock=lambda: now[0])
        waiters = []
        for max_age, pause in calls:
            asked = now[0]
            waiters.append((asked, max_age, asyncio.ensure_future(flight.get(max_age))))
            for _ in range(pause):
                await asyncio.sleep(0)
            now[0] += 0.25
        for asked, max_age, waiter in waiters:
            started = await waiter
            assert started >= asked - max_age  # never older than the caller allowed
        assert most <= 1
        assert flight.runs <= len(calls)

    asyncio.run(scenario())
