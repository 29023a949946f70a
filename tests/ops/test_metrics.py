"""The Prometheus endpoint: live state read at scrape time, and the sync latency histogram."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from scanner_agent.config import AgentConfig, config_from_dict, resolve_loopback_listen
from scanner_agent.control import AgentStatus, ControlClient
from scanner_agent.kernel import ConfigError
from scanner_agent.ops.metrics import MAX_SCRAPES, AgentMetrics, MetricsServer, loop_snapshot
from scanner_agent.traceserver import TraceServerThread
from tests.support.metrics import parse, scrape, value
from tests.support.polling import eventually, wait_for


async def test_metrics_show_scans_queue_link_and_sync_latency(
    make_config: Callable[..., AgentConfig],
    start_agent: Any,
    trace_server: TraceServerThread,
) -> None:
    cfg = make_config(trace_server.url, metrics={"listen": "127.0.0.1:0"})
    agent = await start_agent(cfg)
    codes = [f"8{i:019d}" for i in range(1, 6)]
    replies = await agent.scan(*codes, "12345", codes[0])
    assert [r.split()[0] for r in replies] == ["ACK"] * 5 + ["NAK", "NAK"]
    await agent.drained()
    samples = await scrape(agent)
    assert value(samples, "scanner_agent_up") == 1
    assert value(samples, "scanner_agent_scans_total", result="accepted") == 5
    assert value(samples, "scanner_agent_scans_total", result="refused") == 2
    assert sum(v for (n, _), v in samples.items() if n == "scanner_agent_scans_refused_total") == 2
    assert value(samples, "scanner_agent_outbox_rows", state="delivered") == 5
    assert value(samples, "scanner_agent_outbox_rows", state="pending") == 0
    assert value(samples, "scanner_agent_outbox_backlog") == 0
    assert value(samples, "scanner_agent_outbox_oldest_pending_age_seconds") == 0
    assert value(samples, "scanner_agent_sync_link_state", state="online") == 1
    assert value(samples, "scanner_agent_sync_link_state", state="offline") == 0
    assert value(samples, "scanner_agent_sync_delivered_total") == 5
    count = value(samples, "scanner_agent_sync_request_duration_seconds_count", outcome="ok")
    assert count >= 1
    assert (
        value(
            samples, "scanner_agent_sync_request_duration_seconds_bucket", outcome="ok", le="+Inf"
        )
        == count
    )
    assert value(samples, "scanner_agent_sync_request_duration_seconds_sum", outcome="ok") > 0
    assert ("scanner_agent_info", (("device_id", "test-dock"), ("version", "0.1.0"))) in samples
    await agent.stop()
    assert agent.daemon.metrics_server is None


async def test_undelivered_scans_show_backlog_age_and_an_offline_link(
    make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    agent = await start_agent(make_config(metrics={"listen": "127.0.0.1:0"}))
    assert (await agent.scan("81234560000000011234"))[0].startswith("ACK")
    await eventually(lambda: agent.daemon.sync.state.value == "offline", what="an offline link")
    samples = await scrape(agent)
    assert value(samples, "scanner_agent_outbox_backlog") == 1
    assert value(samples, "scanner_agent_outbox_oldest_pending_age_seconds") >= 0
    assert value(samples, "scanner_agent_sync_link_state", state="offline") == 1
    errors = [k for k in samples if k[0] == "scanner_agent_sync_request_duration_seconds_count"]
    assert errors
    assert all(dict(labels)["outcome"] != "ok" for _, labels in errors)


async def test_metrics_are_off_unless_configured(
    make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    agent = await start_agent(make_config(sync={"enabled": False}))
    assert agent.daemon.metrics_server is None


def test_a_failed_snapshot_reports_up_0_instead_of_hanging() -> None:
    def stalled() -> AgentStatus:
        raise TimeoutError("the event loop did not answer")

    samples = parse(AgentMetrics(stalled).render().decode())
    assert value(samples, "scanner_agent_up") == 0
    assert not [k for k in samples if k[0].startswith("scanner_agent_outbox")]


def test_registries_are_per_instance_not_global() -> None:
    status = AgentStatus(uptime_s=1, backlog=0, queue={}, device_id="a")
    one, two = AgentMetrics(lambda: status), AgentMetrics(lambda: status)
    one.observe_sync(0.2, "ok")
    assert 'outcome="ok"' in one.render().decode()
    assert 'outcome="ok"' not in two.render().decode()


@pytest.mark.parametrize("listen", ["0.0.0.0:9464", "192.168.1.5:9464", "9464", "localhost:x"])
def test_metrics_listen_must_be_a_loopback_host_and_port(listen: str) -> None:
    with pytest.raises(ConfigError, match=r"metrics\.listen"):
        config_from_dict({"metrics": {"listen": listen}})


def test_metrics_listen_accepts_loopback() -> None:
    for listen in ("127.0.0.1:9464", "[::1]:9464", "localhost:9464", ""):
        assert config_from_dict({"metrics": {"listen": listen}}).metrics.listen == listen


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "127.0.0.1.invalid:0"])
def test_the_server_itself_refuses_to_bind_what_does_not_resolve_to_loopback(listen: str) -> None:
    """The check holds where the socket is bound, not only when the config loaded (a name
    may resolve otherwise by then; a caller may build a server without a config)."""
    server = MetricsServer(AgentMetrics(AgentStatus), listen)
    with pytest.raises(ConfigError, match=r"metrics\.listen"):
        server.start()
    assert server.address is None


def test_the_server_binds_the_address_the_check_resolved() -> None:
    """``localhost`` is resolved once, checked, and that address is bound (never the name,
    which the bind would resolve again)."""
    checked = resolve_loopback_listen("localhost:0")
    server = MetricsServer(AgentMetrics(AgentStatus), "localhost:0")
    server.start()
    try:
        host, port = server.address_or_raise()
        assert host == checked.host
        assert port != 0
    finally:
        server.stop()


COUNT_SQL = "SELECT state, COUNT(*) FROM scans GROUP BY state"
"""The statement that starts each full count of the outbox (``Outbox.stats``)."""


async def test_a_scrape_storm_shares_counts_and_status_still_answers(
    make_config: Callable[..., AgentConfig], start_agent: Any, tmp_path: Path
) -> None:
    """Issue 16 item 5: each scrape queued its own full count on the default pool, and
    ``status`` waited behind all of them.  Here a count is held up (the read lock, as a
    count of a huge outbox would hold it) while a storm of scrapes and one ``status``
    arrive; once it ends, ``status`` answers after at most the count in progress and the
    next one, and the storm costs a few counts, not one each."""
    sock = tmp_path / "control.sock"
    agent = await start_agent(
        make_config(metrics={"listen": "127.0.0.1:0"}, control={"socket": str(sock)})
    )
    outbox = agent.daemon.outbox
    control = agent.daemon.control
    counts: list[str] = []
    with outbox._read_lock:
        outbox._reader().set_trace_callback(
            lambda sql: counts.append(sql) if sql.startswith(COUNT_SQL) else None
        )
    server = agent.daemon.metrics_server
    assert server is not None
    url = "http://{}:{}/metrics".format(*server.address_or_raise())
    storm = 48
    scrapes: list[tuple[int, float | None]] = []
    status_answered_after: list[int] = []

    def scrape() -> None:
        reply = httpx.get(url, timeout=120)
        up = parse(reply.text).get(("scanner_agent_up", ())) if reply.status_code == 200 else None
        scrapes.append((reply.status_code, up))

    def ask_status() -> None:
        with ControlClient(str(sock), timeout=120) as client:
            assert client.call("status")["state"] == "running"
        status_answered_after.append(len(counts))

    threads = [threading.Thread(target=scrape) for _ in range(storm)]
    asker = threading.Thread(target=ask_status)
    outbox._read_lock.acquire()  # a long count is running
    try:
        for t in threads:
            t.start()
        # The storm is in: every scrape the server takes is waiting for the count.
        await eventually(lambda: server.active + server.refused >= storm, 60)
        asker.start()
        await eventually(lambda: control.in_progress == 1, 60)
    finally:
        outbox._read_lock.release()
    for t in [*threads, asker]:
        await asyncio.to_thread(t.join)
    assert status_answered_after, "status was not answered"
    assert status_answered_after[0] <= 3, f"status waited for {status_answered_after[0]} counts"
    assert len(scrapes) == storm
    assert {status for status, _ in scrapes} <= {200, 503}, scrapes
    assert {up for status, up in scrapes if status == 200} == {1}, scrapes
    assert len(counts) <= storm // 4, f"{len(counts)} counts for {storm} scrapes"


async def test_a_scrape_that_times_out_cancels_its_snapshot() -> None:
    """A scrape that gives up leaves nothing running on the loop for it."""
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def stalled(max_age_s: float = 0.0) -> AgentStatus:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return AgentStatus()

    snapshot = loop_snapshot(stalled, asyncio.get_running_loop(), timeout=0.05)
    outcome: list[BaseException] = []

    def scrape() -> None:
        try:
            snapshot()
        except TimeoutError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=scrape)
    thread.start()
    await asyncio.wait_for(cancelled.wait(), 30)
    await asyncio.to_thread(thread.join)
    assert started.is_set()
    assert len(outcome) == 1


async def test_status_and_reload_do_not_wait_for_asyncio_s_default_pool(
    make_config: Callable[..., AgentConfig], start_agent: Any, tmp_path: Path, token_file: Path
) -> None:
    """Every thread of the default pool is stuck (as a storm of scrapes left it): the
    control socket's ``status`` and a config reload still answer, on lanes of their own."""
    sock = tmp_path / "control.sock"
    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "test-dock"\n[outbox]\npath = "{tmp_path / "o.db"}"\n'
        f'[sync]\ntoken_file = "{token_file}"\n'
    )
    agent = await start_agent(make_config(control={"socket": str(sock)}))
    agent.daemon.config_path = config
    loop = asyncio.get_running_loop()
    gate = threading.Event()
    stuck = [loop.run_in_executor(None, gate.wait) for _ in range(64)]
    try:
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(b'{"id": 1, "cmd": "status"}\n')
        reply = json.loads(await asyncio.wait_for(reader.readline(), 60))
        writer.close()
        assert reply["ok"], reply
        assert reply["result"]["state"] == "running"
        result = await asyncio.wait_for(agent.daemon.reload(), 60)
        assert result.error is None
        assert "outbox.path" in result.needs_restart  # it read the file
    finally:
        gate.set()
        await asyncio.gather(*stuck)


async def test_a_daemon_stops_while_asyncio_s_default_pool_is_stuck(
    make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    """Every thread of the default pool is stuck: a stop still ends (the parse thread is
    joined on a thread of the daemon's own, not on that pool)."""
    agent = await start_agent(make_config())
    # A GS1 frame starts the parse thread, so stopping has a thread to join.
    replies = await agent.scan("(01)06901234567892(21)ABC123")
    assert replies[0].startswith("ACK "), replies
    loop = asyncio.get_running_loop()
    gate = threading.Event()
    stuck = [loop.run_in_executor(None, gate.wait) for _ in range(64)]
    try:
        agent.daemon.request_stop()
        done, _ = await asyncio.wait({agent.task}, timeout=60)
        assert agent.task in done, "the daemon waited for asyncio's default pool to stop"
        assert agent.daemon.state.value == "stopped"
    finally:
        gate.set()
        await asyncio.gather(*stuck)


def test_clients_trickling_their_requests_are_cut_off_and_scrapes_get_through() -> None:
    """Eight clients sending a byte of their request head at a time, each well within the
    socket timeout, held every slot for as long as they liked: every scrape got 503. The
    request timeout is a deadline for the whole request, not for each read."""
    status = AgentStatus(uptime_s=1, backlog=0, queue={}, device_id="a")
    server = MetricsServer(AgentMetrics(lambda: status), "127.0.0.1:0", request_timeout_s=0.5)
    server.start()
    host, port = server.address_or_raise()
    stop = threading.Event()
    cut: list[bool] = []

    def trickle() -> None:
        head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 5000
        with socket.create_connection((host, port), timeout=30) as s:
            for byte in head:  # 250 s at this pace, unless cut off
                if stop.is_set():
                    cut.append(False)
                    return
                try:
                    s.sendall(bytes([byte]))
                except OSError:
                    break
                stop.wait(0.05)
            cut.append(True)

    tricklers = [threading.Thread(target=trickle) for _ in range(MAX_SCRAPES)]
    try:
        for t in tricklers:
            t.start()
        wait_for(
            lambda: httpx.get(f"http://{host}:{port}/metrics", timeout=30).status_code == 200,
            60,
            "a scrape answered while clients trickle (every one was refused)",
        )
        for t in tricklers:  # each is cut off (or refused) long before its head is sent
            t.join(30)
    finally:
        stop.set()
        for t in tricklers:
            t.join(30)
        server.stop()
    assert cut == [True] * MAX_SCRAPES, cut
