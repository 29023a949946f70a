"""The daemon with ``sync.protocol = "epcis"`` against the EPCIS 2.0 repository emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.config import AgentConfig
from scanner_agent.outbox import RowState
from scanner_agent.platforms.epcis_emulator import EpcisEmulator
from tests.sync.conftest import FAST_SYNC, codes, scan_all

TOKEN = "epcis-token-1"


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


async def test_scans_are_captured_once_through_a_lost_reply(
    repo: EpcisEmulator,
    epcis_token: Path,
    make_config: Callable[..., AgentConfig],
    start_agent: Any,
) -> None:
    cfg = make_config(
        sync={**FAST_SYNC, "protocol": "epcis", "batch_size": 20},
        epcis={
            "url": repo.url,
            "token_file": str(epcis_token),
            "read_point": "urn:epc:id:sgln:0614141.00777.0",
            "biz_location": "urn:epc:id:sgln:0614141.00888.0",
            "poll_initial_s": 0.01,
            "poll_max_s": 0.05,
        },
    )
    repo.state.drop_next = 1  # the first document is stored, its reply cut off
    agent = await start_agent(cfg)
    scanned = codes(60, 50)
    await scan_all(agent, scanned)
    await agent.drained()
    with repo.state.lock:
        stored = list(repo.state.events.values())
        captures = repo.state.captures
    epcs = sorted(epc for e in stored for epc in e["epcList"])
    assert epcs == sorted(f"urn:cn:drugtrace:{c}" for c in scanned)  # each held once
    assert captures >= 4  # 3 batches of at most 20, one of them sent twice
    assert {e["bizStep"] for e in stored} == {"shipping"}
    assert {e["bizLocation"]["id"] for e in stored} == {"urn:epc:id:sgln:0614141.00888.0"}
    daemon = agent.daemon
    assert daemon.thread is not None
    rows = await daemon.thread.call(daemon.thread.outbox.rows, limit=1000)
    assert {r.state for r in rows} == {RowState.DELIVERED.value}
    results = [r.result for r in rows]
    assert results.count("duplicate") == 20  # the resent batch: "already stored"
    status = await daemon.status()
    assert status["link"] == "online"
    assert status["sync"]["failures"] == 1
