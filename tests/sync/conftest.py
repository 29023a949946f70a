"""Helpers for the sync tests: a fault proxy in front of the real service, exactly-once checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scanner_agent.traceserver import TraceServerThread
from tests.sync.faultproxy import FaultProxy


@pytest.fixture
def proxy(trace_server: TraceServerThread) -> Iterator[FaultProxy]:
    """A fault proxy in front of the ``trace_server`` fixture."""
    with FaultProxy(trace_server.port) as p:
        yield p
