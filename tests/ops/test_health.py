"""``/health`` and ``/ready`` beside ``/metrics``, answered from a real daemon's state."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from scanner_agent.config import AgentConfig
from scanner_agent.daemon import Daemon
from scanner_agent.ops.metrics import SNAPSHOT_TIMEOUT_S
from scanner_agent.traceserver import TraceServerThread
from tests.support.agent import run_until_ready
from tests.support.polling import eventually


def base(daemon: Daemon) -> str:
    server = daemon.metrics_server
    assert server is not None
    host, port = server.address_or_raise()
    return f"http://{host}:{port}"


async def get(daemon: Daemon, path: str) -> httpx.Response:
    # From a thread: the probe waits for this event loop to take the snapshot.
    return await asyncio.to_thread(httpx.get, base(daemon) + path, timeout=30)


async def test_a_running_agent_is_live_and_ready_and_says_why(
    make_config: Callable[..., AgentConfig], start_agent: Any, trace_server: TraceServerThread
) -> None:
    agent = await start_agent(make_config(trace_server.url, metrics={"listen": "127.0.0.1:0"}))
    assert (await agent.scan("81234560000000011234"))[0].startswith("ACK")
    await agent.drained()
    live = await get(agent.daemon, "/health")
    assert live.status_code == 200
    assert live.headers["content-type"] == "application/json"
    body = live.json()
    assert body["status"] == "ok"
    assert body["live"] is True
    assert body["state"] == "running"
    assert body["uptime_s"] >= 0
    ready = await get(agent.daemon, "/ready")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert (body["status"], body["ready"], body["backlog"]) == ("ready", True, 0)
    checks = body["checks"]
    assert set(checks) == {"daemon", "outbox", "sources", "link"}
    assert checks["daemon"] == {"ok": True, "state": "running"}
    assert checks["outbox"]["ok"] is True
    assert checks["outbox"]["writable"] is True
    assert checks["outbox"]["path"] == agent.daemon.cfg.outbox.path
    assert checks["sources"] == {"ok": True, "total": 1, "down": []}
    assert checks["link"] == {"ok": True, "state": "online"}
    # The metrics are still there, on the same listener.
    assert "scanner_agent_up 1.0" in (await get(agent.daemon, "/metrics")).text
    head = await asyncio.to_thread(httpx.head, base(agent.daemon) + "/ready", timeout=30)
    assert head.status_code == 200
    post = await asyncio.to_thread(httpx.post, base(agent.daemon) + "/ready", timeout=30)
    assert post.status_code == 405


async def test_an_offline_link_keeps_it_ready_a_refused_token_does_not(
    make_config: Callable[..., AgentConfig],
    start_agent: Any,
    trace_server: TraceServerThread,
    tmp_path: Path,
) -> None:
    offline = await start_agent(make_config(metrics={"listen": "127.0.0.1:0"}))
    assert (await offline.scan("81234560000000011234"))[0].startswith("ACK")
    await eventually(lambda: offline.daemon.sync.state.value == "offline")
    ready = await get(offline.daemon, "/ready")
    assert ready.status_code == 200, ready.text  # scans are kept; they go when the link returns
    assert ready.json()["checks"]["link"] == {"ok": True, "state": "offline"}
    assert ready.json()["backlog"] == 1
    await offline.stop()

    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-right-token\n")
    wrong.chmod(0o600)
    cfg = make_config(
        trace_server.url, metrics={"listen": "127.0.0.1:0"}, sync={"token_file": str(wrong)}
    )
    refused = await start_agent(cfg)
    assert (await refused.scan("81234560000000011235"))[0].startswith("ACK")
    await eventually(lambda: refused.daemon.sync.state.value == "auth_failed")
    ready = await get(refused.daemon, "/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert (body["status"], body["ready"]) == ("not ready", False)
    assert body["checks"]["link"] == {"ok": False, "state": "auth_failed"}
    assert (await get(refused.daemon, "/health")).status_code == 200  # alive all the same


async def test_a_source_whose_device_is_missing_is_not_ready(
    make_config: Callable[..., AgentConfig], tmp_path: Path
) -> None:
    missing = tmp_path / "ttyACM9"
    cfg = make_config(
        metrics={"listen": "127.0.0.1:0"},
        sync={"enabled": False},
        source=[{"type": "serial", "port": str(missing), "name": "dock-scanner"}],
    )
    daemon = Daemon(cfg)
    task = await run_until_ready(daemon)
    try:
        ready = await get(daemon, "/ready")
        assert ready.status_code == 503
        sources = ready.json()["checks"]["sources"]
        assert sources == {"ok": False, "total": 1, "down": ["dock-scanner"]}
        assert (await get(daemon, "/health")).status_code == 200
    finally:
        daemon.request_stop()
        await task


async def test_an_outbox_below_its_reserve_is_not_ready(
    make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    # A reserve no disk meets: the intake refuses every scan, and /ready says why.
    cfg = make_config(metrics={"listen": "127.0.0.1:0"}, outbox={"min_free_mb": 1 << 40})
    agent = await start_agent(cfg)
    assert (await agent.scan("81234560000000011234"))[0].startswith("NAK")
    ready = await get(agent.daemon, "/ready")
    assert ready.status_code == 503
    outbox = ready.json()["checks"]["outbox"]
    assert outbox["ok"] is False
    assert outbox["writable"] is True
    assert outbox["free_mb"] < outbox["reserve_mb"] == 1 << 40


async def test_a_stalled_event_loop_is_not_alive(
    make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    agent = await start_agent(make_config(metrics={"listen": "127.0.0.1:0"}))
    url = base(agent.daemon)
    replies: dict[str, httpx.Response] = {}

    def probe(path: str) -> None:
        replies[path] = httpx.get(url + path, timeout=SNAPSHOT_TIMEOUT_S * 4)

    threads = [threading.Thread(target=probe, args=(p,)) for p in ("/health", "/ready")]
    for t in threads:
        t.start()
    # Block the daemon's loop (as a runaway callback would) until both probes gave up on it.
    deadline = time.monotonic() + SNAPSHOT_TIMEOUT_S * 3
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        time.sleep(0.05)  # noqa: ASYNC251 - blocking the loop is the point of the test
    for t in threads:
        t.join(timeout=30)
    assert replies["/health"].status_code == 503
    assert replies["/health"].json() == {
        "status": "fail",
        "live": False,
        "state": "unknown",
        "error": "the daemon's event loop did not answer: TimeoutError",
    }
    assert replies["/ready"].status_code == 503
    assert replies["/ready"].json()["ready"] is False
    # Unblocked, it answers again.
    assert (await get(agent.daemon, "/health")).status_code == 200
