"""Sync test material: fast retry settings, distinct codes, and checks that every scan was held once."""

from __future__ import annotations

from collections import Counter
from typing import Any

from scanner_agent.outbox import RowState
from scanner_agent.traceserver import BatchStore, TraceStore
from tests.support.agent import RunningAgent, acks

FAST_SYNC: dict[str, Any] = {
    "idle_poll_s": 0.05,
    "connect_timeout_s": 5.0,
    "read_timeout_s": 5.0,
    "write_timeout_s": 5.0,
    "backoff_initial_s": 0.02,
    "backoff_max_s": 0.2,
    "batch_size": 40,
    "max_in_flight": 3,
    "token_poll_s": 0.05,
}
"""Small batches, timeouts and backoffs: every fault is met and recovered from quickly."""


def codes(prefix: int, n: int) -> list[str]:
    """``n`` distinct valid cn20 codes."""
    return [f"8{prefix:02d}{i:017d}" for i in range(n)]


def held_events(store: BatchStore) -> list[dict[str, str]]:
    """Every event the service holds, read page by page through the store (either backend)."""
    out: list[dict[str, str]] = []
    after = 0
    while True:
        page, last = store.events_after(after, 1000)
        if last is None:
            return out
        out += page
        after = last


def assert_held_exactly_once(store: TraceStore, scanned: list[str]) -> dict[str, str]:
    """Every scanned code is held once, under one event id; returns code -> event id."""
    events = held_events(store)
    by_id = Counter(e["event_id"] for e in events)
    by_code = Counter(e["code"] for e in events)
    assert [k for k, n in by_id.items() if n > 1] == []
    assert [k for k, n in by_code.items() if n > 1] == []
    assert sorted(by_code) == sorted(scanned)
    return {e["code"]: e["event_id"] for e in events}


async def assert_agent_delivered(agent: RunningAgent, held: dict[str, str]) -> None:
    """Every row of the agent's outbox reads delivered, with the event id the service holds."""
    daemon = agent.daemon
    assert daemon.thread is not None
    rows = await daemon.thread.call(daemon.thread.outbox.rows, limit=100_000)
    assert {r.state for r in rows} == {RowState.DELIVERED.value}
    assert {r.code: r.event_id for r in rows} == held


async def scan_all(agent: RunningAgent, scanned: list[str]) -> None:
    """Scan like a fixed-mount scanner; every code must be acknowledged (committed)."""
    replies = await agent.scan(*scanned)
    assert replies == acks(*scanned)
