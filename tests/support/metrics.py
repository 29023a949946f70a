"""Reading the agent's Prometheus exposition."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

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
