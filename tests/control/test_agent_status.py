"""The agent's status is one typed value (``AgentStatus``) with one JSON form: what a running
daemon builds reads back the same from its JSON, the control socket sends that form, and the
typed parts name every field their sources report (a field added to a driver's device status,
the sync loop's counters or a TCP source's counters cannot be lost on the way)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scanner_agent.config import AgentConfig
from scanner_agent.control import (
    AgentStatus,
    ControlClient,
    DeviceReport,
    RefusalReport,
    RejectionReport,
    SyncStatus,
    TcpReport,
)
from scanner_agent.kernel import DeviceStatus
from scanner_agent.sync import SyncStats
from scanner_agent.traceserver import TraceServerThread

UNIT = "81234560000000011234"


async def test_a_running_agent_s_status_reads_back_the_same_from_its_json(
    make_config: Callable[..., AgentConfig], start_agent: Any, trace_server: TraceServerThread
) -> None:
    agent = await start_agent(make_config(trace_server.url))
    await agent.scan(UNIT)
    await agent.drained()
    status = await agent.daemon.agent_status()
    assert status.state == "running"
    assert status.accepted == 1
    assert status.sync is not None
    assert status.sync.delivered == 1
    (tcp,) = status.tcp
    assert tcp.source == "tcp:test"
    assert tcp.counters["connections"] == 1
    assert AgentStatus.from_json(status.to_json()) == status
    # Only JSON's own types (lists, not tuples): what is sent is what a client reads.
    assert json.loads(json.dumps(status.to_json())) == status.to_json()
    assert set(status.to_json()) == {f.name for f in dataclasses.fields(AgentStatus)}


async def test_the_control_socket_sends_the_one_json_form(
    make_config: Callable[..., AgentConfig],
    start_agent: Any,
    trace_server: TraceServerThread,
    tmp_path: Path,
) -> None:
    sock = tmp_path / "control.sock"
    agent = await start_agent(make_config(trace_server.url, control={"socket": str(sock)}))
    await agent.scan(UNIT)

    def ask() -> dict[str, Any]:
        with ControlClient(str(sock)) as client:
            reply: dict[str, Any] = client.call("status")
            return reply

    reply = await asyncio.to_thread(ask)
    typed = AgentStatus.from_json(reply)
    assert typed.to_json() == reply
    assert typed.control.serving
    assert typed.control.clients == 1
    assert typed.control.answered == 0
    assert typed.scanned == 1


async def test_the_sync_loop_s_snapshot_is_the_status_s_sync_with_every_counter(
    make_config: Callable[..., AgentConfig], start_agent: Any, trace_server: TraceServerThread
) -> None:
    agent = await start_agent(make_config(trace_server.url))
    sync = agent.daemon.sync
    assert sync is not None
    snapshot = sync.snapshot()
    assert isinstance(snapshot, SyncStatus)
    assert snapshot.link == sync.state.value
    # Every counter the loop keeps reaches the status (none left behind in SyncStats).
    counters = {f.name for f in dataclasses.fields(SyncStats)}
    assert {f.name for f in dataclasses.fields(SyncStatus)} == counters | {"link"}
    assert isinstance((await agent.daemon.agent_status()).sync, SyncStatus)


async def test_tcp_report_keeps_every_counter_of_a_tcp_source(
    make_config: Callable[..., AgentConfig], start_agent: Any, trace_server: TraceServerThread
) -> None:
    agent = await start_agent(make_config(trace_server.url))
    counters = agent.source.counters()
    assert TcpReport.from_json(counters).to_json() == counters


def test_device_report_names_every_field_of_a_driver_s_device_status() -> None:
    assert [f.name for f in dataclasses.fields(DeviceReport)] == [
        f.name for f in dataclasses.fields(DeviceStatus)
    ]


def test_version_1_gives_the_five_times_as_unix_seconds_and_nothing_else_differs() -> None:
    at = "2026-12-07T08:00:00.000+08:00"
    unix = 1796601600.0
    status = AgentStatus(
        last_error_at=at,
        oldest_pending_at=at,
        devices=(DeviceReport("serial:a", True, "/dev/ttyACM0", last_scan_at=at),),
        last_scan_at={"serial:a": at},
        sync=SyncStatus(
            last_error_at=at,
            last_success_at=at,
            retry_at=None,
            recent_rejections=(RejectionReport(at, "b-1", 7, "e-7", UNIT, "unknown product"),),
        ),
    )
    v1, v2 = status.to_json(version=1), status.to_json()
    assert v1["last_scan_at"] == {"serial:a": unix}
    assert v1["devices"][0]["last_scan_at"] == unix
    assert v1["sync"]["last_success_at"] == unix
    assert v1["sync"]["retry_at"] is None
    assert v1["sync"]["recent_rejections"][0]["at"] == unix
    assert v2["sync"]["recent_rejections"][0] == {
        "at": at,
        "batch_id": "b-1",
        "seq": 7,
        "event_id": "e-7",
        "code": UNIT,
        "reason": "unknown product",
    }
    assert v1["sync"]["last_error_at"] == at
    assert v1["oldest_pending_at"] == at
    for key in ("last_scan_at", "devices", "sync"):
        v1.pop(key), v2.pop(key)
    assert v1 == v2


PRODUCT_BARCODE = "6901234567892"


def test_the_last_refusal_reads_back_and_an_agent_without_it_still_reads() -> None:
    at = "2026-12-07T09:30:00.000+08:00"
    status = AgentStatus(
        last_refusal=RefusalReport(
            at=at, verdict="invalid", code=PRODUCT_BARCODE, reason="a product barcode", source="s"
        )
    )
    data = status.to_json()
    assert data["last_refusal"] == {
        "at": at,
        "verdict": "invalid",
        "code": PRODUCT_BARCODE,
        "reason": "a product barcode",
        "source": "s",
    }
    assert AgentStatus.from_json(json.loads(json.dumps(data))) == status
    assert status.to_json(version=1)["last_refusal"] == data["last_refusal"]
    # An agent from before the field: none.  A newer agent's extra keys: ignored.
    data.pop("last_refusal")
    assert AgentStatus.from_json(data).last_refusal is None
    newer = {**status.to_json(), "last_refusal": {"at": at, "verdict": "invalid", "x": 1}}
    assert AgentStatus.from_json(newer).last_refusal == RefusalReport(at=at, verdict="invalid")
    assert AgentStatus().to_json()["last_refusal"] is None


async def test_the_last_refusal_is_in_the_status_and_outlives_a_restart(
    make_config: Callable[..., AgentConfig], start_agent: Any, trace_server: TraceServerThread
) -> None:
    config = make_config(trace_server.url)
    agent = await start_agent(config)
    assert (await agent.daemon.agent_status()).last_refusal is None
    await agent.scan(UNIT, PRODUCT_BARCODE)
    first = (await agent.daemon.agent_status()).last_refusal
    assert first is not None
    assert (first.verdict, first.code, first.source) == ("invalid", PRODUCT_BARCODE, "tcp:test")
    assert first.reason.startswith("a product barcode, not a trace code")
    assert first.at is not None
    await agent.scan(UNIT)  # a duplicate is the last refusal now
    last = (await agent.daemon.agent_status()).last_refusal
    assert last is not None
    assert (last.verdict, last.code, last.reason) == ("duplicate", UNIT, "duplicate scan")
    await agent.stop()

    again = await start_agent(config)
    after = (await again.daemon.agent_status()).last_refusal
    assert after == last, "read back from the refusals on disk after a restart"
    # Two refusals of one kind in one hour are one aggregate on disk: its sample's code is
    # not the last one's, so after a restart the code is not claimed, the rest still is.
    await again.scan("12345", "67890")
    await again.stop()
    third = await start_agent(config)
    seeded = (await third.daemon.agent_status()).last_refusal
    assert seeded is not None
    assert (seeded.verdict, seeded.code, seeded.source) == ("invalid", "", "tcp:test")
    assert seeded.reason.startswith("not a trace code")
