"""The Prometheus endpoint: live state read at scrape time, and the sync latency histogram."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scanner_agent.config import AgentConfig, config_from_dict
from scanner_agent.errors import ConfigError
from scanner_agent.metrics import AgentMetrics
from scanner_agent.traceserver import TraceServerThread

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def scrape(agent: Any) -> Samples:
    server = agent.daemon.metrics_server
    assert server is not None
    host, port = server.address_or_raise()
    # From a thread: the scrape waits for this event loop to take the snapshot.
    reply = await asyncio.to_thread(httpx.get, f"http://{host}:{port}/metrics", timeout=10)
    assert reply.status_code == 200
    return parse(reply.text)


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
    for _ in range(500):
        if agent.daemon.sync.state.value == "offline":
            break
        await asyncio.sleep(0.01)
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
    def stalled() -> dict[str, Any]:
        raise TimeoutError("the event loop did not answer")

    samples = parse(AgentMetrics(stalled).render().decode())
    assert value(samples, "scanner_agent_up") == 0
    assert not [k for k in samples if k[0].startswith("scanner_agent_outbox")]


def test_registries_are_per_instance_not_global() -> None:
    status = {"uptime_s": 1, "backlog": 0, "queue": {}, "device_id": "a"}
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
