"""SyncLoop's bookkeeping rules, driven directly: a real outbox and thread, a scripted HTTP service.

The service here is an ``httpx.MockTransport`` whose handler the test steers, so
the order in which replies arrive is chosen, not left to timing.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from scanner_agent.config import SyncConfig
from scanner_agent.outbox import NewScan, Outbox, OutboxThread, RowState, uuid7
from scanner_agent.sinks.trace_api import TraceApiClient
from scanner_agent.sync import LinkState, SyncLoop
from tests.support.polling import eventually
from tests.support.syncing import codes

Handler = Callable[[httpx.Request, dict[str, object]], Awaitable[httpx.Response]]


def accept_all(request: httpx.Request, body: dict[str, object]) -> httpx.Response:
    events = body["events"]
    assert isinstance(events, list)
    results = [{"event_id": e["event_id"], "status": "accepted", "reason": None} for e in events]
    return httpx.Response(200, json={"batch_id": body["batch_id"], "results": results})


@dataclass
class Rig:
    outbox: Outbox
    thread: OutboxThread
    loop: SyncLoop
    handler: list[Handler] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def queue(self, scanned: list[str]) -> None:
        scans = [
            NewScan(
                uuid7(),
                c,
                "cn20",
                c,
                None,
                "ship",
                "B",
                "dock",
                "test",
                "2026-03-01T09:30:00+08:00",
            )
            for c in scanned
        ]
        await self.thread.call(self.outbox.enqueue_many, scans)
        self.loop.wake()

    async def states(self) -> set[str]:
        rows = await self.thread.call(self.outbox.rows, limit=10_000)
        return {r.state for r in rows}


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    handlers: list[Handler] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        content = request.content
        if request.headers.get("content-encoding") == "gzip":
            content = gzip.decompress(content)
        body = json.loads(content)
        return await handlers[0](request, body)

    cfg = SyncConfig(
        url="http://trace.test",
        batch_size=10,
        max_in_flight=3,
        idle_poll_s=0.05,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        token_poll_s=0.05,
    )
    outbox = Outbox.open(tmp_path / "o.db")
    thread = OutboxThread(outbox)
    client = TraceApiClient(cfg, token="t", device_id="dock", transport=httpx.MockTransport(handle))
    loop = SyncLoop(thread, client, cfg, token_reader=lambda: "t")
    r = Rig(outbox, thread, loop, handlers)
    r.task = asyncio.create_task(loop.run())
    try:
        yield r
    finally:
        r.task.cancel()
        await asyncio.gather(r.task, return_exceptions=True)
        await client.aclose()
        thread.shutdown()
        outbox.close()


async def test_a_late_success_of_an_older_request_does_not_hide_a_newer_failure(rig: Rig) -> None:
    release_old = asyncio.Event()
    release_retry = asyncio.Event()
    seen: list[str] = []

    async def script(request: httpx.Request, body: dict[str, object]) -> httpx.Response:
        key = request.headers["idempotency-key"]
        seen.append(key)
        if len(seen) == 1:
            return accept_all(request, body)  # the probe: opens the window
        if len(seen) == 2:
            await release_old.wait()  # an old request, answered late
            return accept_all(request, body)
        if key == seen[2] and seen.count(key) == 1:
            return httpx.Response(500, json={"error": "boom"})  # a newer one fails at once
        await release_retry.wait()
        return accept_all(request, body)

    rig.handler.append(script)
    await rig.queue(codes(30, 10))
    await eventually(lambda: rig.loop.state is LinkState.ONLINE, what="online after the probe")
    await rig.queue(codes(31, 20))  # two batches: the second fails while the first hangs
    await eventually(lambda: rig.loop.stats.failures >= 1, what="the newer request failed")
    assert rig.loop.state is LinkState.DEGRADED
    release_old.set()
    await eventually(lambda: rig.loop.stats.batches == 2, what="the old request answered")
    assert rig.loop.state is LinkState.DEGRADED  # its success is older than the failure
    release_retry.set()
    await eventually(lambda: rig.loop.stats.delivered == 30, what="everything delivered")
    assert await rig.states() == {RowState.DELIVERED.value}
    assert rig.loop.state is LinkState.ONLINE  # set by the retry, started after the failure


async def test_retry_after_beyond_the_backoff_cap_is_still_honoured(rig: Rig) -> None:
    calls: list[float] = []

    async def script(request: httpx.Request, body: dict[str, object]) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "1"}, json={"error": "slow down"})
        return accept_all(request, body)

    rig.handler.append(script)
    await rig.queue(codes(32, 5))
    await eventually(lambda: rig.loop.stats.delivered == 5, what="delivered after the wait")
    assert calls[1] - calls[0] >= 0.99  # backoff_max_s is 0.05
    assert rig.loop.stats.failures == 1


async def test_at_most_max_in_flight_requests_at_once(rig: Rig) -> None:
    gate = asyncio.Event()
    active = 0
    peak = 0

    async def script(request: httpx.Request, body: dict[str, object]) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            if peak >= 3 or len(body["events"]) < 10:  # type: ignore[arg-type]
                gate.set()
            await gate.wait()
            return accept_all(request, body)
        finally:
            active -= 1

    rig.handler.append(script)
    await rig.queue(codes(33, 1))
    await eventually(lambda: rig.loop.stats.delivered == 1, what="probe")
    gate.clear()
    await rig.queue(codes(34, 100))
    await eventually(lambda: rig.loop.stats.delivered == 101, what="backlog delivered")
    assert peak == 3


async def test_a_stop_that_arrives_as_the_loop_is_woken_still_stops_it(tmp_path: Path) -> None:
    # Python 3.11's asyncio.wait_for returns the inner result when a cancel and the inner
    # wake-up land in the same loop iteration, so the sync loop went on waiting (forever,
    # with a full window) while the daemon waited for it to stop.  Found as a rare CI hang.
    cfg = SyncConfig(url="http://trace.test")
    outbox = Outbox.open(tmp_path / "o.db")
    thread = OutboxThread(outbox)
    never = httpx.MockTransport(lambda request: httpx.Response(500))
    client = TraceApiClient(cfg, token="t", device_id="dock", transport=never)
    loop = SyncLoop(thread, client, cfg, token_reader=lambda: "t")
    try:
        for _ in range(20):
            waiting = asyncio.create_task(loop._wait_change(loop._generation, 30.0))
            await asyncio.sleep(0)  # now waiting for a change
            loop.wake()  # the change, and in the same iteration ...
            waiting.cancel()  # ... the stop
            with pytest.raises(asyncio.CancelledError):
                await waiting
    finally:
        await client.aclose()
        thread.shutdown()
        outbox.close()
