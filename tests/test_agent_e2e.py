"""The whole path on loopback: TCP scanner -> daemon -> SQLite outbox -> real trace service."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drivers.tcp_protocol import parse_reply
from scanner_agent.config import AgentConfig
from scanner_agent.daemon import Daemon
from scanner_agent.lab.simulate import simulate
from scanner_agent.traceserver import TraceServerThread
from tests.support.agent import TOKEN, acks
from tests.support.polling import eventually

GS = "\x1d"
CN20 = "81234560000000011234"
GS1 = f"]d2010690123456789217280500104711{GS}21ABC123"


async def test_acked_scans_reach_the_service_exactly_once_and_bad_ones_are_naked(
    trace_server: TraceServerThread, make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    agent = await start_agent(make_config(trace_server.url))
    replies = await agent.scan(CN20, GS1, "6901234567892", CN20, "81234")
    assert replies[0] == f"ACK {CN20}\taccepted\t{CN20}"
    assert replies[1] == (
        "ACK ]d2010690123456789217280500104711\\x1d21ABC123"
        "\taccepted\t(01)06901234567892(17)280500(10)4711(21)ABC123"
    )
    assert replies[2] == "NAK 6901234567892\tinvalid\ta product barcode, not a trace code"
    assert replies[3] == f"NAK {CN20}\tduplicate\tduplicate scan"
    assert replies[4].startswith("NAK 81234\tinvalid\t")
    await agent.drained()
    held, _ = trace_server.store.events_after(0, 100)
    codes = sorted(e["code"] for e in held)
    assert codes == sorted([CN20, "(01)06901234567892(17)280500(10)4711(21)ABC123"])
    assert {e["bill"] for e in held} == {"test-dock-ship"}
    status = await agent.daemon.status()
    assert status["link"] == "online"
    assert status["accepted"] == 2
    assert status["refused"]["duplicate scan"] == 1


async def test_scans_are_acked_while_the_service_is_down_and_delivered_once_it_is_back(
    tmp_path: Path, make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    agent = await start_agent(make_config(f"http://127.0.0.1:{port}"))
    lines = [s.line for s in simulate(120) if s.kind in ("cn20", "gs1")]
    replies = await agent.scan(*lines)
    assert all(r.startswith("ACK ") for r in replies)
    await asyncio.sleep(0.3)
    status = await agent.daemon.status()
    assert status["link"] == "offline"
    assert status["backlog"] == len(lines)
    with TraceServerThread(tmp_path / "late.db", TOKEN, port=port) as server:
        await agent.drained()
        assert server.store.count_events() == len(lines)
    assert (await agent.daemon.status())["link"] == "online"


async def test_scans_queued_before_a_restart_are_delivered_by_the_next_run(
    tmp_path: Path, make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    cfg = make_config("http://127.0.0.1:9", sync={"enabled": False})
    agent = await start_agent(cfg)
    replies = await agent.scan(CN20, GS1)
    assert all(r.startswith("ACK") for r in replies)
    await agent.stop()
    with TraceServerThread(tmp_path / "svc.db", TOKEN) as server:
        second = await start_agent(make_config(server.url))
        await second.drained()
        assert server.store.count_events() == 2


async def test_a_full_outbox_naks_with_outbox_full_and_queues_nothing(
    trace_server: TraceServerThread, make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    agent = await start_agent(make_config(trace_server.url, outbox={"min_free_mb": 1 << 40}))
    assert await agent.scan(CN20) == [f"NAK {CN20}\tfull\toutbox full"]
    assert (await agent.daemon.queue_stats()).backlog == 0


async def test_configured_replay_source_feeds_the_daemon(
    tmp_path: Path, trace_server: TraceServerThread, make_config: Callable[..., AgentConfig]
) -> None:
    capture = tmp_path / "capture.txt"
    capture.write_bytes(f"{CN20}\r\n{GS1}\r\nnot-a-code\r\n".encode())
    cfg = make_config(
        trace_server.url,
        source=[{"type": "replay", "path": str(capture), "action": "receive", "bill": "PO-7"}],
    )
    daemon = Daemon(cfg)
    task = asyncio.create_task(daemon.run())
    await daemon.wait_ready()
    await eventually(lambda: trace_server.store.count_events() == 2, what="both events delivered")
    daemon.request_stop()
    await task
    events, _ = trace_server.store.events_after(0, 10)
    assert [(e["action"], e["bill"]) for e in events] == [("receive", "PO-7")] * 2


async def test_many_concurrent_scanners_each_get_every_reply_in_order(
    trace_server: TraceServerThread, make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    agent = await start_agent(make_config(trace_server.url))
    batches = [[f"8{k:02d}{i:017d}" for i in range(200)] for k in range(5)]
    results = await asyncio.gather(*(agent.scan(*lines) for lines in batches))
    for lines, replies in zip(batches, results, strict=True):
        assert replies == acks(*lines)
    await agent.drained()
    assert trace_server.store.count_events() == 1000
    assert agent.daemon.committer is not None
    assert agent.daemon.committer.groups < 1000  # scans shared transactions


async def test_a_clean_stop_answers_every_scan_it_committed(
    make_config: Callable[..., AgentConfig], start_agent: Any, caplog: Any
) -> None:
    from scanner_agent.outbox import Outbox

    cfg = make_config(sync={"enabled": False})
    agent = await start_agent(cfg)
    reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
    lines = [f"8{i:019d}" for i in range(3000)]
    writer.write(b"".join(c.encode() + b"\r\n" for c in lines))
    await writer.drain()
    await reader.readline()  # the daemon is busy with this connection now
    stop = asyncio.create_task(agent.stop())
    async with asyncio.timeout(30):  # the daemon must close the connection when it is done
        replies = [line.decode() async for line in reader]
        await stop
    writer.close()
    acked = {parse_reply(r.encode()).detail for r in replies if r.startswith("ACK ")} | {lines[0]}
    with Outbox.open(cfg.outbox.path) as box:
        committed = {r.code for r in box.rows(limit=10_000)}
    assert committed == acked  # nothing committed went unanswered, nothing answered is missing
    assert not [r for r in caplog.records if r.levelname == "ERROR" and r.name == "asyncio"]


async def test_housekeeping_prunes_delivered_rows_and_empties_the_wal_when_idle(
    trace_server: TraceServerThread,
    make_config: Callable[..., AgentConfig],
    start_agent: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Daemon, "housekeeping_interval_s", 0.05)
    # Retention of about a millisecond: delivered rows are due at the next tick.
    agent = await start_agent(make_config(trace_server.url, outbox={"retention_days": 1e-8}))
    lines = [s.line for s in simulate(60) if s.kind == "cn20"]
    assert all(r.startswith("ACK ") for r in await agent.scan(*lines))
    await agent.drained()

    async def pruned() -> Any:
        stats = await agent.daemon.queue_stats()
        return stats if stats.counts.get("delivered", 0) == 0 and stats.wal_bytes == 0 else None

    stats = await eventually(pruned, what="delivered rows pruned and the WAL checkpointed")
    assert stats.counts.get("delivered", 0) == 0  # pruned after retention
    assert stats.wal_bytes == 0  # an idle tick truncated the WAL
    assert trace_server.store.count_events() == len(lines)  # pruned here, held there


async def test_housekeeping_prunes_refusal_records_past_their_retention(
    make_config: Callable[..., AgentConfig],
    start_agent: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Daemon, "housekeeping_interval_s", 0.05)
    cfg = make_config(sync={"enabled": False}, outbox={"rejects_retention_days": 1e-8})
    agent = await start_agent(cfg)
    replies = await agent.scan(*[f"junk{i}" for i in range(50)])
    assert not any(r.startswith("ACK ") for r in replies)

    async def no_rejects() -> bool:
        return (await agent.daemon.queue_stats()).rejects == 0

    await eventually(no_rejects, what="the rejects pruned")
