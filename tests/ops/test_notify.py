"""sd_notify on a real NOTIFY_SOCKET: READY, STATUS, WATCHDOG, and no pings from a stalled loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.config import AgentConfig
from tests.support.agent import acks
from tests.support.notify import NotifyListener
from tests.support.polling import eventually

WATCHDOG_USEC = 200_000
"""A 0.2 s watchdog: the daemon pings every 0.1 s."""
STALL_S = 1.0


@pytest.fixture
def notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyListener]:
    listener = NotifyListener(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield listener
    listener.close()


async def test_a_stalled_event_loop_stops_the_watchdog_pings(
    notify: NotifyListener, make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    agent = await start_agent(make_config(sync={"enabled": False}))
    await eventually(lambda: len(notify.pings()) >= 3)
    first = notify.snapshot()[0][1]
    assert first.startswith("READY=1")
    assert any(m.startswith("STATUS=backlog 0, link disabled") for _, m in notify.snapshot())

    # Block the daemon's event loop (the test shares it) as a deadlocked call would.
    stalled_at = time.monotonic()
    time.sleep(STALL_S)  # noqa: ASYNC251 - the point of the test
    resumed_at = time.monotonic()

    await eventually(lambda: len([t for t in notify.pings() if t > resumed_at]) >= 2)
    during = [t for t in notify.pings() if stalled_at + 0.05 < t < resumed_at]
    assert during == [], f"{len(during)} pings while the loop was blocked"
    before = max(t for t in notify.pings() if t <= stalled_at + 0.05)
    after = min(t for t in notify.pings() if t >= resumed_at)
    # systemd would have seen no ping for longer than WatchdogSec and restarted the service.
    assert after - before >= STALL_S - 0.1 > WATCHDOG_USEC / 1e6
    await agent.stop()
    await eventually(lambda: any(m == "STOPPING=1" for _, m in notify.snapshot()))


async def test_status_line_shows_backlog_and_link_state(
    notify: NotifyListener, make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    agent = await start_agent(make_config())  # sync to a closed port: the link goes offline
    assert await agent.scan("81234560000000011234") == acks("81234560000000011234")
    await eventually(
        lambda: any(m.startswith("STATUS=backlog 1, link offline") for _, m in notify.snapshot())
    )
