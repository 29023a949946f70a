"""Network faults between a real daemon and the real reference service, injected by a proxy.

Every test ends the same way: each scanned code is held by the service exactly
once (counted by event id and by code), and every row of the agent's outbox
reads delivered under the event id the service holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.config import AgentConfig
from scanner_agent.sync import LinkState
from scanner_agent.traceserver import TraceServerThread
from tests.support.agent import TOKEN
from tests.support.net import free_port
from tests.support.polling import eventually
from tests.support.syncing import (
    FAST_SYNC,
    assert_agent_delivered,
    assert_held_exactly_once,
    codes,
    scan_all,
)
from tests.sync.faultproxy import Fault, FaultProxy

MakeConfig = Callable[..., AgentConfig]


async def test_service_down_at_start_then_up_delivers_every_scan_once(
    tmp_path: Path, make_config: MakeConfig, start_agent: Any
) -> None:
    port = free_port()
    with FaultProxy(port) as proxy:  # the agent connects, the proxy finds no service: reset
        agent = await start_agent(make_config(proxy.url, sync=FAST_SYNC))
        scanned = codes(1, 150)
        await scan_all(agent, scanned)
        sync = agent.daemon.sync
        await eventually(lambda: sync.state is LinkState.OFFLINE, what="link offline")
        status = await agent.daemon.status()
        assert status["backlog"] == len(scanned)
        assert status["sync"]["failures"] >= 1
        with TraceServerThread(tmp_path / "late.db", TOKEN, port=port) as server:
            await agent.drained()
            held = assert_held_exactly_once(server.store, scanned)
            await assert_agent_delivered(agent, held)
        assert sync.state is LinkState.ONLINE


async def test_service_killed_mid_batch_and_restarted_on_the_same_file(
    trace_server: TraceServerThread,
    proxy: FaultProxy,
    make_config: MakeConfig,
    start_agent: Any,
) -> None:
    # A long read timeout: the agent is still waiting on the batch when the service dies.
    agent = await start_agent(make_config(proxy.url, sync={**FAST_SYNC, "read_timeout_s": 30.0}))
    scanned = codes(2, 300)
    await scan_all(agent, scanned[:1])
    await agent.drained()  # online: several batches may now be in flight
    proxy.arm(Fault.HOLD_REQUEST)
    await scan_all(agent, scanned[1:])
    await eventually(proxy.held.is_set, what="a batch half sent to the service")
    db, port = trace_server.store.path, trace_server.port
    await asyncio.to_thread(trace_server.kill)  # connections reset mid-request, like a crash
    with TraceServerThread(db, TOKEN, port=port) as restarted:
        proxy.release_held()  # the agent's connection is reset too
        await agent.drained()
        held = assert_held_exactly_once(restarted.store, scanned)
        await assert_agent_delivered(agent, held)
    held_key = next(s.key for s in proxy.seen if s.fault is Fault.HOLD_REQUEST)
    assert proxy.keys().count(held_key) >= 2  # sent again under the same batch id


@pytest.mark.parametrize(
    ("fault", "count", "extra"),
    [
        pytest.param(Fault.RESET_AFTER_REPLY, 3, {}, id="reset-after-request-stored"),
        pytest.param(Fault.DELAY_REPLY, 2, {"read_timeout_s": 0.3}, id="reply-past-read-timeout"),
        pytest.param(Fault.STATUS, 3, {}, id="500-after-request-stored"),
        pytest.param(Fault.TRUNCATE_REPLY, 3, {}, id="truncated-reply"),
        pytest.param(Fault.GARBAGE_REPLY, 3, {}, id="garbage-json-reply"),
        pytest.param(Fault.MISMATCH_REPLY, 3, {}, id="reply-with-wrong-event-ids"),
    ],
)
async def test_a_lost_or_broken_reply_is_retried_and_replayed_not_stored_twice(
    fault: Fault,
    count: int,
    extra: dict[str, Any],
    trace_server: TraceServerThread,
    proxy: FaultProxy,
    make_config: MakeConfig,
    start_agent: Any,
) -> None:
    # The service stores each faulted batch; the agent never gets (or cannot use) the reply.
    proxy.arm(fault, count, delay=1.5)
    agent = await start_agent(make_config(proxy.url, sync={**FAST_SYNC, **extra}))
    scanned = codes(3, 200)
    await scan_all(agent, scanned)
    await agent.drained()
    held = assert_held_exactly_once(trace_server.store, scanned)
    await assert_agent_delivered(agent, held)
    assert proxy.pending == 0
    keys = Counter(proxy.keys())
    faulted = {s.key for s in proxy.seen if s.fault is fault}
    assert faulted
    assert all(keys[k] >= 2 for k in faulted)  # each faulted batch went again, same id
    assert trace_server.store.count_batches() == len(keys)  # and was stored once
    status = await agent.daemon.status()
    assert status["link"] == "online"
    assert status["sync"]["failures"] >= count
    assert status["sync"]["delivered"] == len(scanned)


@pytest.mark.parametrize("fault", [Fault.GARBAGE_REPLY, Fault.MISMATCH_REPLY])
async def test_a_protocol_error_marks_nothing_and_is_logged_once(
    fault: Fault,
    trace_server: TraceServerThread,
    proxy: FaultProxy,
    make_config: MakeConfig,
    start_agent: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="scanner_agent.sync")
    proxy.arm(fault, 6)
    agent = await start_agent(make_config(proxy.url, sync=FAST_SYNC))
    scanned = codes(4, 30)
    await scan_all(agent, scanned)
    await eventually(lambda: proxy.pending == 0, what="every bad reply served")
    sync = agent.daemon.sync
    assert sync.state in (LinkState.DEGRADED, LinkState.ONLINE)
    await agent.drained()
    held = assert_held_exactly_once(trace_server.store, scanned)
    await assert_agent_delivered(agent, held)
    # One batch answered badly six times: retried six times, a warning only the first time.
    assert Counter(proxy.keys()).most_common(1)[0][1] == 7
    protocol = [r for r in caplog.records if "reply to batch" in r.getMessage()]
    assert len(protocol) == 1
    assert sync.stats.failures == 6


async def test_service_errors_500_are_retried(
    trace_server: TraceServerThread,
    proxy: FaultProxy,
    make_config: MakeConfig,
    start_agent: Any,
) -> None:
    trace_server.faults.fail_next(4, status=500, retry_after=None)
    agent = await start_agent(make_config(proxy.url, sync=FAST_SYNC))
    scanned = codes(5, 120)
    await scan_all(agent, scanned)
    await agent.drained()
    held = assert_held_exactly_once(trace_server.store, scanned)
    await assert_agent_delivered(agent, held)
    assert trace_server.faults.injected == 4
    assert agent.daemon.sync.stats.failures >= 4


@pytest.mark.parametrize("status", [429, 502, 504])
async def test_retry_after_is_honoured_before_anything_else_is_sent(
    trace_server: TraceServerThread,
    proxy: FaultProxy,
    make_config: MakeConfig,
    start_agent: Any,
    status: int,
) -> None:
    # 429: the service throttles; 502/504: a reverse proxy's answers while the
    # service behind it restarts or stalls.
    if status == 429:
        trace_server.faults.throttle(1, retry_after=1)
    else:
        trace_server.faults.fail_next(1, status=status, retry_after=1)
    agent = await start_agent(make_config(proxy.url, sync=FAST_SYNC))  # backoff_max_s 0.2
    scanned = codes(6, 120)
    await scan_all(agent, scanned)
    await agent.drained()
    held = assert_held_exactly_once(trace_server.store, scanned)
    await assert_agent_delivered(agent, held)
    assert trace_server.faults.injected == 1
    first, second = proxy.seen[0], proxy.seen[1]
    assert second.key == first.key  # the same batch again
    assert second.at - first.at >= 0.99  # not before Retry-After, though the backoff cap is 0.2 s


async def test_several_batches_in_flight_but_never_more_than_max_in_flight(
    trace_server: TraceServerThread,
    proxy: FaultProxy,
    make_config: MakeConfig,
    start_agent: Any,
) -> None:
    proxy.slow = 0.05  # replies take a while: the window fills while a backlog exists
    agent = await start_agent(make_config(proxy.url, sync={**FAST_SYNC, "batch_size": 20}))
    scanned = codes(7, 400)
    await scan_all(agent, scanned)
    await agent.drained()
    held = assert_held_exactly_once(trace_server.store, scanned)
    await assert_agent_delivered(agent, held)
    assert 2 <= proxy.max_in_flight <= FAST_SYNC["max_in_flight"]
