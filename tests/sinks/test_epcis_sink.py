"""The daemon with ``sync.protocol = "epcis"`` against the EPCIS 2.0 repository emulator.

Real daemon, real TCP scanner source, real outbox file, real HTTP to the
emulated repository on loopback, with the sync issue's faults: a lost reply
after the repository stored the events, a rate limit, the repository down at
start, a refused event, a refused token.  The guarantee is the same as for the
other sinks: every committed scan is delivered once (the repository holds each
``eventID`` once, and each scanned code in exactly one ObjectEvent), and every
refusal is a dead letter with the repository's reason.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner_agent import cli
from scanner_agent.config import AgentConfig
from scanner_agent.lab.epcis_emulator import EpcisEmulator
from scanner_agent.outbox import RowState
from scanner_agent.sync import LinkState
from tests.support.agent import RunningAgent, acks
from tests.support.net import free_port
from tests.support.polling import eventually
from tests.support.syncing import FAST_SYNC, codes, scan_all

TOKEN = "epcis-token-1"
READ_POINT = "urn:epc:id:sgln:0614141.00777.0"
BIZ_LOCATION = "urn:epc:id:sgln:0614141.00888.0"


@pytest.fixture
def repo() -> Iterator[EpcisEmulator]:
    with EpcisEmulator(token=TOKEN) as r:
        yield r


@pytest.fixture
def epcis_token(tmp_path: Path) -> Path:
    path = tmp_path / "epcis_token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o640)
    return path


@pytest.fixture
def epcis_config(
    make_config: Callable[..., AgentConfig], epcis_token: Path
) -> Callable[..., AgentConfig]:
    """A config for ``url``; keyword arguments replace keys of ``[epcis]``."""

    def make(url: str, *, batch_size: int = 20, **epcis: Any) -> AgentConfig:
        table: dict[str, Any] = {
            "url": url,
            "token_file": str(epcis_token),
            "read_point": READ_POINT,
            "biz_location": BIZ_LOCATION,
            "poll_initial_s": 0.01,
            "poll_max_s": 0.05,
        }
        table.update(epcis)
        return make_config(
            sync={**FAST_SYNC, "protocol": "epcis", "batch_size": batch_size}, epcis=table
        )

    return make


def stored(repo: EpcisEmulator) -> list[dict[str, Any]]:
    with repo.state.lock:
        return list(repo.state.events.values())


def assert_captured_once(repo: EpcisEmulator, scanned: list[str]) -> None:
    """Each scanned code is in exactly one stored ObjectEvent (and each eventID is held once)."""
    epcs = Counter(epc for e in stored(repo) if e["type"] == "ObjectEvent" for epc in e["epcList"])
    assert [epc for epc, n in epcs.items() if n > 1] == []
    assert sorted(epcs) == sorted(f"urn:cn:drugtrace:{c}" for c in scanned)


async def rows(agent: RunningAgent, **filters: Any) -> list[Any]:
    thread = agent.daemon.thread
    assert thread is not None
    return await thread.call(thread.outbox.rows, limit=100_000, **filters)


async def test_scans_are_captured_once_through_a_lost_reply(
    repo: EpcisEmulator, epcis_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    repo.state.drop_next = 1  # the first document is stored, its reply cut off
    agent = await start_agent(epcis_config(repo.url))
    scanned = codes(60, 50)
    await scan_all(agent, scanned)
    await agent.drained()
    assert_captured_once(repo, scanned)
    with repo.state.lock:
        captures = repo.state.captures
    assert captures >= 4  # 3 batches of at most 20, one of them sent twice
    events = stored(repo)
    assert {e["bizStep"] for e in events} == {"shipping"}
    assert {e["bizLocation"]["id"] for e in events} == {BIZ_LOCATION}
    got = await rows(agent)
    assert {r.state for r in got} == {RowState.DELIVERED.value}
    results = [r.result for r in got]
    assert results.count("duplicate") == 20  # the resent batch: "already stored"
    status = await agent.daemon.status()
    assert status["link"] == "online"
    assert status["sync"]["failures"] == 1
    assert status["sync"]["delivered"] == 50


async def test_a_rate_limit_waits_for_retry_after_then_delivers(
    repo: EpcisEmulator, epcis_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    repo.state.rate_limit_next = 1
    repo.state.retry_after = 1
    agent = await start_agent(epcis_config(repo.url))
    scanned = codes(61, 10)
    started = time.monotonic()
    await scan_all(agent, scanned)
    await agent.drained()
    # backoff_max_s is 0.2 s here: only the repository's Retry-After explains a second.
    assert time.monotonic() - started >= 0.9
    assert_captured_once(repo, scanned)
    status = await agent.daemon.status()
    assert status["sync"]["failures"] == 1
    assert "busy (429)" in (status["last_error"] or "")
    assert status["link"] == "online"
    assert {r.result for r in await rows(agent)} == {"accepted"}


async def test_repository_down_at_start_then_up_delivers_every_scan_once(
    epcis_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    port = free_port()
    agent = await start_agent(epcis_config(f"http://127.0.0.1:{port}"))
    scanned = codes(62, 45)
    await scan_all(agent, scanned)
    sync = agent.daemon.sync
    assert sync is not None
    await eventually(lambda: sync.state is LinkState.OFFLINE, what="link offline")
    status = await agent.daemon.status()
    assert status["backlog"] == len(scanned)
    assert status["sync"]["failures"] >= 1
    with EpcisEmulator(token=TOKEN, port=port) as late:
        await agent.drained()
        assert_captured_once(late, scanned)
    assert {r.state for r in await rows(agent)} == {RowState.DELIVERED.value}
    assert sync.state is LinkState.ONLINE


@pytest.mark.parametrize("behaviour", ["proceed", "rollback"])
async def test_a_refused_event_is_a_dead_letter_with_the_repositorys_reason(
    repo: EpcisEmulator,
    epcis_config: Callable[..., AgentConfig],
    start_agent: Any,
    capsys: pytest.CaptureFixture[str],
    behaviour: str,
) -> None:
    scanned = codes(63, 12)
    bad = scanned[5]
    repo.state.refuse_epcs[f"urn:cn:drugtrace:{bad}"] = "unknown company prefix"
    cfg = epcis_config(repo.url, error_behaviour=behaviour)
    agent = await start_agent(cfg)
    await scan_all(agent, scanned)
    await agent.drained()
    assert_captured_once(repo, [c for c in scanned if c != bad])
    dead = await rows(agent, state=RowState.REJECTED.value)
    assert [r.code for r in dead] == [bad]
    reason = dead[0].reason or ""
    assert "unknown company prefix" in reason
    assert "Invalid event" in reason
    status = await agent.daemon.status()
    assert status["sync"]["rejected"] == 1
    assert [r["code"] for r in status["sync"]["recent_rejections"]] == [bad]
    assert "unknown company prefix" in status["sync"]["recent_rejections"][0]["reason"]
    assert status["link"] == "online"  # a refused event is not a link problem
    await agent.stop()
    assert cli.main(["queue", "ls", "--outbox", cfg.outbox.path, "--state", "rejected"]) == 0
    listed = capsys.readouterr().out.splitlines()[1:]  # the table's rows, under its header
    assert len(listed) == 1
    assert bad in listed[0]
    assert "unknown company prefix" in listed[0]


async def test_a_closed_bills_carton_goes_with_its_aggregation_once(
    repo: EpcisEmulator, epcis_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    carton, *units = codes(64, 4)
    loose = codes(65, 2)
    repo.state.drop_next = 1  # the bill's document is stored, the reply lost: all sent again
    agent = await start_agent(epcis_config(repo.url))
    desk = agent.daemon.desk
    assert desk is not None
    await desk.import_packs("parent,child\n" + "".join(f"{carton},{u}\n" for u in units))
    await desk.open("SO-CARTON", 201, to_party="customer")
    await scan_all(agent, [carton, *loose])
    await desk.close("SO-CARTON")
    await agent.drained()
    events = stored(repo)
    aggregations = [e for e in events if e["type"] == "AggregationEvent"]
    assert len(aggregations) == 1
    agg = aggregations[0]
    assert agg["action"] == "ADD"
    assert agg["parentID"] == f"urn:cn:drugtrace:{carton}"
    assert agg["childEPCs"] == sorted(f"urn:cn:drugtrace:{u}" for u in units)
    assert agg["bizTransactionList"][0]["bizTransaction"] == "urn:cn:drugtrace:bill:SO-CARTON"
    assert_captured_once(repo, [carton, *loose])
    got = {r.code: r for r in await rows(agent)}
    assert {r.state for r in got.values()} == {RowState.DELIVERED.value}
    assert got[carton].result == "duplicate"  # both of its events were held on the resend


async def test_a_carton_with_a_bad_unit_in_the_pack_data_is_refused_with_the_reason(
    repo: EpcisEmulator, epcis_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    carton, unit = codes(66, 2)
    agent = await start_agent(epcis_config(repo.url))
    desk = agent.daemon.desk
    assert desk is not None
    await desk.import_packs(f"parent,child\n{carton},{unit}\n{carton},6901234567892\n")
    await desk.open("SO-BAD", 201, to_party="customer")
    await scan_all(agent, [carton])
    await desk.close("SO-BAD")
    await agent.drained()
    dead = await rows(agent, state=RowState.REJECTED.value)
    assert [r.code for r in dead] == [carton]
    assert "'6901234567892' in the pack data is not a trace code" in (dead[0].reason or "")
    assert stored(repo) == []  # nothing of the carton went out


async def test_a_refused_token_raises_an_alarm_naming_the_repository_and_the_file(
    repo: EpcisEmulator,
    epcis_config: Callable[..., AgentConfig],
    epcis_token: Path,
    start_agent: Any,
) -> None:
    await asyncio.to_thread(epcis_token.write_text, "not-the-token\n")
    agent = await start_agent(epcis_config(repo.url))
    await scan_all(agent, codes(67, 3))
    sync = agent.daemon.sync
    assert sync is not None
    await eventually(lambda: sync.state is LinkState.AUTH_FAILED, what="auth_failed")
    alarms = (await agent.daemon.status())["alarms"]
    assert len(alarms) == 1
    assert alarms[0].startswith(f"the EPCIS repository ({repo.url}) refused the token")
    assert f"epcis.token_file ({epcis_token})" in alarms[0]
    assert "not-the-token" not in alarms[0]
    await asyncio.to_thread(epcis_token.write_text, TOKEN + "\n")
    await agent.drained()
    assert_captured_once(repo, codes(67, 3))
    assert (await agent.daemon.status())["alarms"] == []


async def test_a_refused_aggregation_rejects_the_cartons_scan_naming_the_event(
    repo: EpcisEmulator, epcis_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    carton, good, refused = codes(68, 3)
    repo.state.refuse_epcs[f"urn:cn:drugtrace:{refused}"] = "unit recalled"
    agent = await start_agent(epcis_config(repo.url))
    desk = agent.daemon.desk
    assert desk is not None
    await desk.import_packs(f"parent,child\n{carton},{good}\n{carton},{refused}\n")
    await desk.open("SO-AGG", 201, to_party="customer")
    await scan_all(agent, [carton])
    await desk.close("SO-AGG")
    await agent.drained()
    (dead,) = await rows(agent, state=RowState.REJECTED.value)
    assert dead.code == carton
    assert (dead.reason or "").startswith("AggregationEvent: Invalid event")
    assert "unit recalled" in (dead.reason or "")
    # With "proceed" the carton's own ObjectEvent was stored; the aggregation was not.
    assert [e["type"] for e in stored(repo)] == ["ObjectEvent"]


async def test_a_code_without_an_epc_uri_is_refused_at_the_scanner(
    repo: EpcisEmulator, epcis_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    # An MA code has no EPC URI here: EPCIS could never take its event, so it is NAKed
    # with the sink's reason instead of being ACKed and dead-lettered when sent.
    agent = await start_agent(epcis_config(repo.url))
    gs1 = "(01)06901234567892(17)280500(10)4711(21)ABC123"
    scanned = codes(62, 3)
    replies = await agent.scan(*scanned, "MA.156.M0.100001.0001", gs1)
    assert replies[:3] == acks(*scanned)
    assert replies[3] == (
        "NAK MA.156.M0.100001.0001\tinvalid\tEPCIS takes only GS1 and 20-digit trace codes"
    )
    assert replies[4].startswith("ACK "), replies[4]
    await agent.drained()
    assert await rows(agent, state=RowState.REJECTED.value) == []
    assert len(stored(repo)) == 4
    status = await agent.daemon.status()
    assert status["refused"] == {"EPCIS takes only GS1 and 20-digit trace codes": 1}
