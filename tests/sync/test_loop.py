"""The sync loop's verdict handling with the real daemon and service: rejections, 4xx, 413, token."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.config import AgentConfig
from scanner_agent.outbox import NewScan, Outbox, RowState, uuid7
from scanner_agent.sync import LinkState
from scanner_agent.traceserver import TraceServerThread
from tests.support.agent import TOKEN
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


def _write(path: Path, text: str) -> None:
    path.write_text(text)


async def test_rejected_scans_become_dead_letters_with_the_reason_and_are_shown(
    tmp_path: Path, make_config: MakeConfig, start_agent: Any, caplog: pytest.LogCaptureFixture
) -> None:
    scanned = codes(10, 60)
    refused = set(scanned[5:8])
    caplog.set_level(logging.WARNING, logger="scanner_agent.sync")
    with TraceServerThread(tmp_path / "t.db", TOKEN, reject_codes=frozenset(refused)) as server:
        agent = await start_agent(make_config(server.url, sync=FAST_SYNC))
        await scan_all(agent, scanned)
        await agent.drained()
        held = assert_held_exactly_once(server.store, [c for c in scanned if c not in refused])
    daemon = agent.daemon
    assert daemon.thread is not None
    rows = await daemon.thread.call(daemon.thread.outbox.rows, limit=1000)
    dead = {r.code: r.reason for r in rows if r.state == RowState.REJECTED.value}
    assert set(dead) == refused
    assert all(reason and "not registered" in reason for reason in dead.values())
    assert {r.code: r.event_id for r in rows if r.state == RowState.DELIVERED.value} == held
    status = await daemon.status()
    assert status["link"] == "online"
    assert status["sync"]["rejected"] == 3
    shown = status["sync"]["recent_rejections"]
    assert {r["code"] for r in shown} == refused
    assert all("not registered" in r["reason"] for r in shown)
    json.dumps(status)  # JSON-ready for the control interface
    logged = " ".join(r.getMessage() for r in caplog.records if "rejected" in r.getMessage())
    assert all(code in logged for code in refused)


async def test_a_batch_refused_as_a_whole_is_dead_lettered_and_the_rest_flows(
    trace_server: TraceServerThread,
    proxy: FaultProxy,
    make_config: MakeConfig,
    start_agent: Any,
) -> None:
    proxy.arm(Fault.STATUS, status=400)  # e.g. the service finds the batch malformed
    agent = await start_agent(make_config(proxy.url, sync=FAST_SYNC))
    scanned = codes(11, 100)
    await scan_all(agent, scanned)
    await agent.drained()
    daemon = agent.daemon
    assert daemon.thread is not None
    rows = await daemon.thread.call(daemon.thread.outbox.rows, limit=1000)
    dead = [r for r in rows if r.state == RowState.REJECTED.value]
    assert dead
    assert all("400" in (r.reason or "") for r in dead)
    delivered = [r.code for r in rows if r.state == RowState.DELIVERED.value]
    assert len(dead) + len(delivered) == len(scanned)
    # The refused batch was stored by the service (the proxy answered 400 afterwards), so the
    # service holds every code once; the agent keeps the refused ones to send again by hand.
    assert_held_exactly_once(trace_server.store, scanned)
    assert daemon.sync is not None
    assert daemon.sync.stats.rejected == len(dead)
    assert daemon.sync.stats.recent_rejections


async def test_413_halves_the_batch_until_the_service_takes_it(
    tmp_path: Path, make_config: MakeConfig, start_agent: Any
) -> None:
    with TraceServerThread(tmp_path / "t.db", TOKEN, max_body_bytes=4096) as server:
        cfg = make_config(server.url, sync={**FAST_SYNC, "gzip": False, "batch_size": 64})
        agent = await start_agent(cfg, action="receive", bill="PO-413")
        scanned = codes(12, 200)
        await scan_all(agent, scanned)
        await agent.drained()
        held = assert_held_exactly_once(server.store, scanned)
        await assert_agent_delivered(agent, held)
    sync = agent.daemon.sync
    assert sync is not None
    assert sync.stats.batch_limit < 64
    assert sync.stats.batch_limit * 230 < 4096 or sync.stats.batch_limit == 1


async def test_a_refused_token_pauses_syncing_with_an_alarm_until_the_file_changes(
    trace_server: TraceServerThread,
    make_config: MakeConfig,
    start_agent: Any,
    token_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _write(token_file, "stale-token-value-7c1f\n")
    agent = await start_agent(make_config(trace_server.url, sync=FAST_SYNC))
    scanned = codes(13, 80)
    await scan_all(agent, scanned[:40])
    sync = agent.daemon.sync
    await eventually(lambda: sync.state is LinkState.AUTH_FAILED, what="auth_failed")
    status = await agent.daemon.status()
    assert status["link"] == "auth_failed"
    (alarm,) = status["alarms"]
    assert alarm.startswith(f"the trace service ({trace_server.url}) refused the token")
    assert f"sync.token_file ({token_file}) changes" in alarm
    assert "stale-token-value" not in alarm
    # Scanning goes on and nothing is sent while the token is refused.
    await scan_all(agent, scanned[40:])
    assert (await agent.daemon.status())["backlog"] == len(scanned)
    requests_while_paused = sync.stats.failures
    _write(token_file, TOKEN + "\n")  # the operator fixes the file
    await agent.drained()
    held = assert_held_exactly_once(trace_server.store, scanned)
    await assert_agent_delivered(agent, held)
    status = await agent.daemon.status()
    assert status["link"] == "online"
    assert status["sync"]["alarm"] is None
    assert requests_while_paused <= FAST_SYNC["max_in_flight"]
    text = caplog.text + json.dumps(status) + str(sync.stats.last_error)
    assert "stale-token-value-7c1f" not in text
    assert TOKEN not in text


async def test_reload_picks_up_a_new_token_from_the_environment(
    trace_server: TraceServerThread,
    make_config: MakeConfig,
    start_agent: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCANNER_AGENT_TEST_TOKEN", "wrong")
    cfg = make_config(
        trace_server.url,
        sync={**FAST_SYNC, "token_file": "", "token_env": "SCANNER_AGENT_TEST_TOKEN"},
    )
    agent = await start_agent(cfg)
    scanned = codes(14, 10)
    await scan_all(agent, scanned)
    sync = agent.daemon.sync
    await eventually(lambda: sync.state is LinkState.AUTH_FAILED, what="auth_failed")
    monkeypatch.setenv("SCANNER_AGENT_TEST_TOKEN", TOKEN)
    assert sync.reload() is True  # what the daemon will call on SIGHUP
    await agent.drained()
    assert_held_exactly_once(trace_server.store, scanned)
    assert sync.reload() is False


def _enqueue(outbox: Outbox, scanned: list[str]) -> None:
    outbox.enqueue_many(
        [
            NewScan(
                event_id=uuid7(),
                code=c,
                scheme="cn20",
                raw=c,
                symbology=None,
                action="ship",
                bill="B-1",
                device_id="test-dock",
                source="test",
                scanned_at="2026-03-01T09:30:00.000+08:00",
            )
            for c in scanned
        ]
    )


async def test_batches_left_in_flight_by_a_crashed_run_go_again_at_once_under_their_ids(
    tmp_path: Path, trace_server: TraceServerThread, make_config: MakeConfig, start_agent: Any
) -> None:
    cfg = make_config(trace_server.url, sync={**FAST_SYNC, "lease_s": 3600.0})
    scanned = codes(15, 50)
    with Outbox.open(cfg.outbox.path) as outbox:
        _enqueue(outbox, scanned)
        first = outbox.lease(20, lease_s=3600.0)  # the run that "crashed" held these
        second = outbox.lease(20, lease_s=3600.0)
    assert first is not None
    assert second is not None
    agent = await start_agent(cfg)
    await agent.drained()  # well before the hour-long leases run out
    held = assert_held_exactly_once(trace_server.store, scanned)
    await assert_agent_delivered(agent, held)
    for batch in (first, second):
        assert trace_server.store.batch_reply(batch.batch_id) is not None


async def test_stopping_with_a_batch_in_flight_gives_it_back_for_the_next_run(
    trace_server: TraceServerThread,
    proxy: FaultProxy,
    make_config: MakeConfig,
    start_agent: Any,
) -> None:
    cfg = make_config(proxy.url, sync={**FAST_SYNC, "read_timeout_s": 30.0})
    proxy.arm(Fault.HOLD_REQUEST)
    agent = await start_agent(cfg)
    await scan_all(agent, codes(16, 5))
    await eventually(proxy.held.is_set, what="a batch in flight")
    await agent.stop()
    proxy.release_held()
    key = proxy.seen[0].key
    with Outbox.open(cfg.outbox.path) as outbox:
        again = outbox.lease(100, lease_s=60.0)
    assert again is not None
    assert again.batch_id == key
    assert again.attempts >= 1
