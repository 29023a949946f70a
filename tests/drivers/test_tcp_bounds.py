"""The TCP source under attack, on real sockets against a daemon built from a config.

Each test reproduces one attack of issue 16 (a sender that never reads, idle
connections filling every slot, half-open connections, slow or endless
frames, a flood of refused frames, unknown addresses) and checks the bound
that holds against it (docs/tcp-protocol.md, "Limits").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scanner_agent.config import AgentConfig
from tests.drivers.tcp_client import Scanner, port_of, tcp_agent
from tests.support.polling import eventually

CN20 = "81234560000000011234"


def cn20(i: int) -> bytes:
    return f"8123457{i:09d}0000".encode()


NO_RATE_LIMIT = {"refused_per_s": 1e9, "refused_burst": 1 << 30}


async def test_a_sender_that_never_reads_is_pushed_back_with_bounded_frames_in_flight(
    make_config: Callable[..., AgentConfig],
) -> None:
    """16 MiB of one-byte lines from three connections that never read their replies."""
    async with tcp_agent(
        make_config,
        max_in_flight=64,
        total_in_flight=100,
        write_timeout_s=0,
        **NO_RATE_LIMIT,
    ) as (daemon, source):
        flood = b"x\n" * (8 << 20)  # 16 MiB, 8 Mi frames
        writers = []
        for _ in range(3):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # takes few replies
            sock.connect(("127.0.0.1", port_of(source)))
            sock.setblocking(False)
            _reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(flood)  # never drained, never read: the client's own buffer holds it
            writers.append(writer)
        # The daemon stops reading once replies back up: the clients cannot send it all.
        await eventually(
            lambda: (
                source.stats.frames_in_flight >= 100
                and all(w.transport.get_write_buffer_size() > 0 for w in writers)
            ),
            what="the daemon to stop reading",
        )
        assert source.stats.peak_frames_in_flight <= 100  # total_in_flight
        assert source.stats.peak_bytes_in_flight <= 100 * 2
        assert daemon.intake is not None
        scanned = daemon.intake.stats.scanned
        assert scanned < 3 * (8 << 20) // 10, scanned
        # A scanner still gets in and is answered once the flood's frames are answered.
        for w in writers:
            w.transport.abort()
        scanner = await Scanner.connect(port_of(source))
        assert [r.kind for r in await scanner.scan(CN20.encode())] == ["accepted"]
        await scanner.close()


async def test_idle_connections_do_not_lock_a_scanner_out(
    make_config: Callable[..., AgentConfig],
) -> None:
    async with tcp_agent(make_config, max_clients=4) as (_daemon, source):
        idle = [await Scanner.connect(port_of(source)) for _ in range(4)]
        await eventually(lambda: source.clients == 4, what="four connections")
        for _attempt in range(10):
            scanner = await Scanner.connect(port_of(source))
            (reply,) = await scanner.scan(CN20.encode())
            assert reply.kind in ("accepted", "duplicate")
            await scanner.close()
        # The oldest idle connection made room first.
        assert await idle[0].line() == b""
        assert source.stats.evicted >= 1
        assert source.stats.refused == 0
        for s in idle:
            await s.close()


async def test_a_scanner_with_good_reads_keeps_its_slot_against_silent_connections(
    make_config: Callable[..., AgentConfig],
) -> None:
    async with tcp_agent(make_config, max_clients=3) as (_daemon, source):
        scanner = await Scanner.connect(port_of(source))
        assert [r.kind for r in await scanner.scan(cn20(1))] == ["accepted"]
        crowd = []
        for _ in range(12):  # each newcomer evicts someone: never the scanner
            crowd.append(await Scanner.connect(port_of(source)))
            await eventually(
                lambda: source.stats.connections == len(crowd) + 1, what="the newcomer"
            )
        assert [r.kind for r in await scanner.scan(cn20(2))] == ["accepted"]
        assert source.stats.evicted == 10
        for s in [scanner, *crowd]:
            await s.close()


async def test_an_idle_connection_is_closed_after_idle_timeout(
    make_config: Callable[..., AgentConfig],
) -> None:
    async with tcp_agent(make_config, idle_timeout_s=0.2) as (_daemon, source):
        scanner = await Scanner.connect(port_of(source))
        assert [r.kind for r in await scanner.scan(cn20(1))] == ["accepted"]
        assert await scanner.line() == b""  # closed by the daemon
        assert source.stats.idle_closed == 1
        await scanner.close()


async def test_a_frame_not_completed_in_time_gets_one_timeout_reply_then_the_connection_closes(
    make_config: Callable[..., AgentConfig],
) -> None:
    async with tcp_agent(make_config, read_timeout_s=0.3) as (_daemon, source):
        scanner = await Scanner.connect(port_of(source))
        await scanner.send(cn20(1) + b"\n8123", end=b"")  # the second frame never ends
        first, late = await scanner.replies(2)
        assert first.kind == "accepted"
        assert (late.accepted, late.kind, late.echo) == (False, "timeout", b"8123")
        assert await scanner.line() == b""
        await scanner.close()


async def test_a_trickling_frame_times_out_however_often_its_bytes_come(
    make_config: Callable[..., AgentConfig],
) -> None:
    async with tcp_agent(make_config, read_timeout_s=0.5) as (_daemon, source):
        scanner = await Scanner.connect(port_of(source))
        sent = b""
        while source.stats.read_timeouts == 0:  # one byte per 50 ms: a slowloris
            await scanner.send(b"8", end=b"")
            sent += b"8"
            await asyncio.sleep(0.05)  # pacing the attacker, not waiting for a result
            assert len(sent) < 400, "the frame never timed out"
        reply = await scanner.reply()
        assert reply.kind == "timeout"
        assert sent.startswith(reply.echo)
        await scanner.close()


def _vanish(sock: socket.socket) -> None:
    """Close a connected socket without telling the peer, like a scanner losing power.

    TCP_REPAIR (CAP_NET_ADMIN) makes close() send neither FIN nor RST; the
    server keeps a half-open connection until it probes it.
    """
    tcp_repair = 19  # linux/tcp.h
    try:
        sock.setsockopt(socket.IPPROTO_TCP, tcp_repair, 1)
    except OSError as exc:
        sock.close()
        pytest.skip(f"cannot make a half-open connection here (TCP_REPAIR: {exc})")
    sock.close()


async def test_half_open_connections_are_found_by_keepalive_and_free_their_slot(
    make_config: Callable[..., AgentConfig],
) -> None:
    async with tcp_agent(make_config, keepalive_s=1, max_clients=4) as (_daemon, source):
        for n in range(1, 4):
            sock = socket.create_connection(("127.0.0.1", port_of(source)))
            await eventually(lambda n=n: source.stats.connections == n, what="the connection")
            _vanish(sock)
        await eventually(lambda: source.clients == 3, what="three half-open connections")
        await eventually(lambda: source.clients == 0, within=30, what="keepalive to drop them")
        assert source.stats.evicted == 0


async def test_a_peer_sending_refused_frames_is_slowed_down_and_others_are_not(
    make_config: Callable[..., AgentConfig],
) -> None:
    async with tcp_agent(make_config, refused_per_s=0.5, refused_burst=5) as (daemon, source):
        attacker = await Scanner.connect(port_of(source), local="127.0.0.2")
        junk = [b"junk%d" % i for i in range(50)]
        assert {r.kind for r in await attacker.scan(*junk)} == {"invalid"}
        # 45 refusals over its budget: its next frames wait about 90 s.
        await attacker.send(b"junk-late")
        await eventually(lambda: source.stats.slowed >= 1, what="the attacker to be slowed down")
        scanner = await Scanner.connect(port_of(source), local="127.0.0.3")
        replies = await scanner.scan(cn20(1), b"a bad label", cn20(2))
        assert [r.kind for r in replies] == ["accepted", "invalid", "accepted"]
        # The attacker's late frame is not even read yet: the scanner did not wait behind it.
        assert daemon.intake is not None
        assert daemon.intake.stats.scanned == 50 + 3
        await attacker.close()
        await scanner.close()


async def test_only_allowlisted_addresses_connect_and_refusals_are_logged_at_a_bounded_rate(
    make_config: Callable[..., AgentConfig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="drivers.tcp")
    async with tcp_agent(make_config, allow=["127.0.0.3/32", "10.0.0.0/8"]) as (_d, source):
        for _ in range(50):
            stranger = await Scanner.connect(port_of(source), local="127.0.0.2")
            with contextlib.suppress(ConnectionResetError):
                assert await stranger.line() == b""
            await stranger.close()
        scanner = await Scanner.connect(port_of(source), local="127.0.0.3")
        assert [r.kind for r in await scanner.scan(cn20(1))] == ["accepted"]
        await scanner.close()
        assert source.stats.refused == 50
    # One line at the first refusal, one summary of the rest when the source stops.
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2, refusals
    assert "allowlist" in refusals[0]
    assert refusals[1].startswith("49 more like this")


async def test_the_source_s_counters_are_in_status_and_metrics(
    make_config: Callable[..., AgentConfig],
) -> None:
    """An operator sees the attack the bounds held off: connections refused and evicted,
    timeouts, slowed peers, what is in flight; in ``status`` and on the metrics endpoint."""
    async with tcp_agent(
        make_config, max_clients=2, read_timeout_s=0.3, metrics={"listen": "127.0.0.1:0"}
    ) as (daemon, source):
        idle = [await Scanner.connect(port_of(source)) for _ in range(2)]
        await eventually(lambda: source.clients == 2, what="two connections")
        late = await Scanner.connect(port_of(source))  # evicts the first idle one
        await late.send(b"8123", end=b"")  # never finished: one timeout reply
        assert (await late.reply(within=30)).kind == "timeout"
        await eventually(lambda: source.stats.read_timeouts == 1, what="the timeout counted")
        status = await daemon.status()
        (tcp,) = status["tcp"]
        assert tcp["source"] == source.name
        assert tcp["listen"] == f"127.0.0.1:{port_of(source)}"
        assert tcp["connections"] == 3
        assert tcp["evicted"] == 1
        assert tcp["read_timeouts"] == 1
        assert tcp["clients"] == source.clients
        for key in ("refused", "idle_closed", "write_timeouts", "slowed", "frames_in_flight"):
            assert tcp[key] == 0, key
        server = daemon.metrics_server
        assert server is not None
        host, port = server.address_or_raise()
        reply = await asyncio.to_thread(httpx.get, f"http://{host}:{port}/metrics", timeout=30)
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(reply.text)
            for s in family.samples
        }
        name = ("source", source.name)
        events = "scanner_agent_tcp_connection_events_total"
        assert samples[(events, (("event", "accepted"), name))] == 3
        assert samples[(events, (("event", "evicted"), name))] == 1
        assert samples[(events, (("event", "read_timeout"), name))] == 1
        assert samples[(events, (("event", "refused"), name))] == 0
        assert samples[("scanner_agent_tcp_clients", (name,))] == source.clients
        for s in idle:
            await s.close()
        await late.close()


async def test_refusals_counted_but_not_recorded_near_the_reserve_are_in_status(
    make_config: Callable[..., AgentConfig], tmp_path: Path
) -> None:
    """Below twice ``min_free_mb`` refusals are not written (the reserve is for scans); how
    many were left out is shown, not only logged once."""
    free_mb = shutil.disk_usage(tmp_path).free >> 20
    # Between the reserve and twice the reserve: scans still go in, refusals are not written.
    async with tcp_agent(
        make_config,
        outbox={"min_free_mb": int(free_mb * 0.6)},
        metrics={"listen": "127.0.0.1:0"},
    ) as (daemon, source):
        scanner = await Scanner.connect(port_of(source))
        replies = await scanner.scan(b"junk-1", b"junk-2", CN20.encode())
        assert [r.kind for r in replies] == ["invalid", "invalid", "accepted"]
        await scanner.close()
        status = await daemon.status()
        assert status["refusals_dropped"] == 2
        server = daemon.metrics_server
        assert server is not None
        host, port = server.address_or_raise()
        reply = await asyncio.to_thread(httpx.get, f"http://{host}:{port}/metrics", timeout=30)
        assert "scanner_agent_refusals_unrecorded_total 2.0" in reply.text


async def test_a_peer_reconnecting_for_each_refused_frame_adds_to_one_aggregate(
    make_config: Callable[..., AgentConfig],
) -> None:
    """Refusals aggregate per peer address, not per connection: a client that opens a new
    connection for each junk frame made one ``rejects`` row (a 4 KiB sample each) per
    frame, up to the table's cap, as if it had never been aggregated."""
    async with tcp_agent(make_config, **NO_RATE_LIMIT) as (daemon, source):
        for i in range(30):
            scanner = await Scanner.connect(port_of(source), local="127.0.0.7")
            assert [r.kind for r in await scanner.scan(b"\xff" * 300 + b"%d" % i)] == ["invalid"]
            await scanner.close()
        assert daemon.thread is not None
        rejects = await daemon.thread.call(daemon.thread.outbox.rejects)
        assert [(r.device_id, r.count) for r in rejects] == [("127.0.0.7", 30)]
