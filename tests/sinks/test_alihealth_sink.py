"""The daemon with ``sync.protocol = "alihealth"`` against the 码上放心 emulator on loopback.

Real daemon, real TCP scanner source, real outbox file, real HTTP to the
emulated TOP gateway (signature, timestamp and bill-number checks included).
The guarantee is the sync issue's: every committed scan of a closed bill is
delivered once (the platform holds each bill number once, with exactly its
codes), and every refusal is a dead letter with the platform's reason.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from drivers.tcp import TcpSource
from scanner_agent import cli
from scanner_agent.bills import BillError
from scanner_agent.config import AgentConfig
from scanner_agent.daemon import Daemon
from scanner_agent.lab.alihealth_emulator import AliHealthEmulator
from scanner_agent.outbox import RowState
from scanner_agent.sync import LinkState
from tests.support.agent import RunningAgent, run_until_ready
from tests.support.metrics import scrape, value
from tests.support.net import free_port
from tests.support.polling import eventually
from tests.support.syncing import FAST_SYNC, codes

SECRET = "app-secret-1"
UPLOAD = "alibaba.alihealth.drug.kyt.uploadinoutbill"


@pytest.fixture
def gateway() -> Iterator[AliHealthEmulator]:
    with AliHealthEmulator({"app1": SECRET}) as gw:
        yield gw


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "app_secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def ali_config(
    make_config: Callable[..., AgentConfig], gateway: AliHealthEmulator, secret_file: Path
) -> Callable[..., AgentConfig]:
    def make(
        *,
        control: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        **alihealth: Any,
    ) -> AgentConfig:
        table: dict[str, Any] = {
            "url": gateway.url,
            "app_key": "app1",
            "app_secret_file": str(secret_file),
            "ref_user_id": "ref-ent-1",
            "ent_id": "ent-self",
            "oper_ic_name": "仓库一号",
            "status_poll_s": 0.05,
            "status_polls": 4,
        }
        table.update(alihealth)
        return make_config(
            sync={**FAST_SYNC, "protocol": "alihealth"},
            alihealth=table,
            control=control or {"socket": ""},
            metrics=metrics or {"listen": ""},
        )

    return make


class LoseReplies(httpx.AsyncBaseTransport):
    """Real HTTP to the gateway, but the next ``lose`` upload replies never reach the agent.

    The gateway has stored the bill by then: the agent sees a reset connection,
    exactly as when a link drops while the reply is on its way.
    """

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.lose = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if self.lose and b"uploadinoutbill" in request.content:
            self.lose -= 1
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("connection reset by peer (reply lost)", request=request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture
async def start() -> Any:
    running: list[RunningAgent] = []

    async def start(
        cfg: AgentConfig, *, action: str = "ship", transport: httpx.AsyncBaseTransport | None = None
    ) -> RunningAgent:
        source = TcpSource("tcp:test", "127.0.0.1", 0, ack=True)
        daemon = Daemon(cfg, sources=[(source, action, "")], transport=transport)
        agent = RunningAgent(daemon, source, await run_until_ready(daemon))
        running.append(agent)
        return agent

    yield start
    for agent in running:
        if not agent.task.done():
            await agent.stop()


def uploads(gw: AliHealthEmulator, bill_code: str | None = None) -> list[dict[str, str]]:
    """Upload calls the gateway received (for one bill number, or all)."""
    with gw.state.lock:
        calls = list(gw.state.calls)
    return [
        c
        for c in calls
        if c.get("method") == UPLOAD and (bill_code is None or c.get("bill_code") == bill_code)
    ]


def stored_codes(gw: AliHealthEmulator, bill_code: str) -> list[str]:
    with gw.state.lock:
        return gw.state.bills[("ref-ent-1", bill_code)]["trace_codes"].split(",")


async def rows(agent: RunningAgent, **filters: Any) -> list[Any]:
    thread = agent.daemon.thread
    assert thread is not None
    return await thread.call(thread.outbox.rows, limit=100_000, **filters)


async def scan_bill(
    agent: RunningAgent, number: str, scanned: list[str], *, bill_type: int = 201, **parties: str
) -> None:
    """Open a bill, scan ``scanned`` onto it (each acknowledged), leave it open."""
    desk = agent.daemon.desk
    assert desk is not None
    await desk.open(number, bill_type, **parties)
    for start in range(0, len(scanned), 2000):
        chunk = scanned[start : start + 2000]
        replies = await agent.scan(*chunk)
        assert [r.split(" ")[0] for r in replies] == ["ACK"] * len(chunk), replies[:3]


async def close(agent: RunningAgent, number: str) -> None:
    desk = agent.daemon.desk
    assert desk is not None
    await desk.close(number)


async def history(agent: RunningAgent, number: str) -> list[dict[str, str]]:
    desk = agent.daemon.desk
    assert desk is not None
    return await desk.history(number)


async def test_a_closed_bill_is_uploaded_once_and_an_open_one_is_held(
    gateway: AliHealthEmulator, ali_config: Callable[..., AgentConfig], start: Any
) -> None:
    agent = await start(ali_config())
    shipped = codes(40, 25)
    await scan_bill(agent, "SO-1", shipped, to_party="ent-customer")
    await asyncio.sleep(0.3)  # several idle polls of the sync loop
    assert uploads(gateway) == []
    assert {r.state for r in await rows(agent)} == {RowState.HELD.value}
    assert (await agent.daemon.status())["held"] == 25

    await close(agent, "SO-1")
    await agent.drained()
    assert len(uploads(gateway, "SO-1")) == 1
    assert stored_codes(gateway, "SO-1") == sorted(shipped)
    call = uploads(gateway, "SO-1")[0]
    assert (call["bill_type"], call["from_user_id"], call["to_user_id"]) == (
        "201",
        "ent-self",  # alihealth.ent_id: this enterprise ships
        "ent-customer",
    )
    assert call["oper_ic_code"] == "app1"
    delivered = await rows(agent)
    assert {(r.state, r.result) for r in delivered} == {("delivered", "accepted")}
    status = await agent.daemon.status()
    assert status["link"] == "online"
    assert status["sync"]["delivered"] == 25

    async def processed() -> bool:
        return any(h["event"] == "platform-status" for h in await history(agent, "SO-1"))

    await eventually(processed, what="the platform's deal_status in the bill log")
    log = {h["event"]: h["detail"] for h in await history(agent, "SO-1")}
    assert log["upload"].startswith("SO-1: accepted SUCCESS")
    assert "deal_status 3 (processed)" in log["platform-status"]
    await asyncio.sleep(0.2)
    assert len(uploads(gateway, "SO-1")) == 1  # nothing sent twice


async def test_a_lost_reply_is_retried_and_the_known_bill_counts_as_delivered(
    gateway: AliHealthEmulator, ali_config: Callable[..., AgentConfig], start: Any
) -> None:
    transport = LoseReplies()
    transport.lose = 1
    agent = await start(ali_config(status_poll_s=0), action="purchase", transport=transport)
    received = codes(41, 12)
    await scan_bill(agent, "PO-7", received, bill_type=102, from_party="ent-supplier")
    await close(agent, "PO-7")
    await agent.drained()
    attempts = uploads(gateway, "PO-7")
    assert len(attempts) == 2  # the first stored, its reply lost; the retry told "exists"
    assert attempts[0]["trace_codes"] == attempts[1]["trace_codes"]
    assert stored_codes(gateway, "PO-7") == sorted(received)
    assert (attempts[0]["from_user_id"], attempts[0]["to_user_id"]) == ("ent-supplier", "ent-self")
    got = await rows(agent)
    assert {r.state for r in got} == {RowState.DELIVERED.value}
    assert {r.result for r in got} == {"duplicate"}
    assert all("该单据号已存在" in (r.reason or "") for r in got)
    status = await agent.daemon.status()
    assert status["sync"]["failures"] == 1
    assert status["sync"]["rejected"] == 0


async def test_a_rate_limit_waits_out_the_ban_then_delivers(
    gateway: AliHealthEmulator, ali_config: Callable[..., AgentConfig], start: Any
) -> None:
    agent = await start(ali_config(status_poll_s=0))
    shipped = codes(42, 8)
    await scan_bill(agent, "SO-RL", shipped, to_party="ent-customer")
    gateway.state.rate_limit_next = 1  # "This ban will last for 1 more seconds"
    started = time.monotonic()
    await close(agent, "SO-RL")
    await agent.drained()
    elapsed = time.monotonic() - started
    # backoff_max_s is 0.2 s here: only the gateway's ban explains waiting a second.
    assert elapsed >= 0.9
    assert len(uploads(gateway, "SO-RL")) == 2
    assert stored_codes(gateway, "SO-RL") == sorted(shipped)
    status = await agent.daemon.status()
    assert status["sync"]["failures"] == 1
    assert "rate limit" in (status["last_error"] or "")
    assert status["link"] == "online"
    assert {r.result for r in await rows(agent)} == {"accepted"}


async def test_a_fail_reply_dead_letters_the_bill_with_the_platform_message(
    gateway: AliHealthEmulator,
    ali_config: Callable[..., AgentConfig],
    start: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = ali_config(status_poll_s=0)
    agent = await start(cfg)
    shipped = codes(43, 6)
    gateway.state.fail_next = 1
    await scan_bill(agent, "SO-F", shipped, to_party="ent-customer")
    await close(agent, "SO-F")
    await agent.drained()
    dead = await rows(agent, state=RowState.REJECTED.value)
    assert sorted(r.code for r in dead) == sorted(shipped)
    assert all("系统繁忙" in (r.reason or "") and "SO-F" in (r.reason or "") for r in dead)
    status = await agent.daemon.status()
    assert status["sync"]["rejected"] == 6
    assert all("系统繁忙" in r["reason"] for r in status["sync"]["recent_rejections"])
    desk = agent.daemon.desk
    assert desk is not None
    assert (await desk.view("SO-F")).bill.state == "partly_rejected"

    # The operator sends the dead letters again: the platform never stored the bill.
    thread = agent.daemon.thread
    assert thread is not None
    assert await thread.call(thread.outbox.requeue_rejected) == 6
    assert agent.daemon.sync is not None
    agent.daemon.sync.wake()
    await agent.drained()
    assert stored_codes(gateway, "SO-F") == sorted(shipped)
    assert {r.result for r in await rows(agent)} == {"accepted"}

    gateway.state.fail_next = 1
    await scan_bill(agent, "SO-G", codes(44, 3), to_party="ent-customer")
    await close(agent, "SO-G")
    await agent.drained()
    await agent.stop()
    assert cli.main(["queue", "ls", "--outbox", cfg.outbox.path, "--state", "rejected"]) == 0
    listed = capsys.readouterr().out.splitlines()[1:]  # the table's rows, under its header
    assert len(listed) == 3
    assert all("SO-G" in line and "系统繁忙" in line for line in listed)


GS1 = "(01)06901234567892(17)280500(10)4711(21)ABC123"
MA = "MA.156.M0.100001.0001"


async def test_codes_and_bills_the_platform_cannot_take_are_refused_at_the_scanner(
    gateway: AliHealthEmulator,
    ali_config: Callable[..., AgentConfig],
    start: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sock = tmp_path / "control.sock"
    cfg = ali_config(
        status_poll_s=0, control={"socket": str(sock)}, metrics={"listen": "127.0.0.1:0"}
    )
    agent = await start(cfg)
    # No bill open: the scans would go to the device's default bill, which 码上放心 cannot take.
    stray = codes(46, 2)
    replies = await agent.scan(*stray)
    assert [r.split(" ")[0] for r in replies] == ["NAK", "NAK"], replies
    assert all("no bill open: open a 码上放心 bill first" in r for r in replies), replies
    desk = agent.daemon.desk
    assert desk is not None
    await desk.open("SO-MIX", 201, to_party="ent-customer")
    cn20 = codes(45, 4)
    replies = await agent.scan(*cn20, GS1, MA)
    assert [r.split(" ")[0] for r in replies] == ["ACK"] * 4 + ["NAK", "NAK"], replies
    assert all("码上放心 takes only 20-digit trace codes" in r for r in replies[4:]), replies
    await close(agent, "SO-MIX")
    await agent.drained()
    assert stored_codes(gateway, "SO-MIX") == sorted(cn20)
    # Nothing that was acknowledged became a dead letter: the refusals happened at the scanner.
    assert await rows(agent, state=RowState.REJECTED.value) == []
    assert sorted(r.code for r in await rows(agent)) == sorted(cn20)
    assert len(uploads(gateway)) == 1
    status = await agent.daemon.status()
    assert status["refused"] == {"no bill open": 2, "码上放心 takes only 20-digit trace codes": 2}
    assert status["accepted"] == 4
    # Kept for audit like any refusal (the rejects table), so `lookup` explains the NAK.
    history_of_gs1 = await desk.lookup(GS1)
    assert [r["reason"] for r in history_of_gs1.refused] == [
        "码上放心 takes only 20-digit trace codes"
    ]
    # `scanner-agent status` (the CLI over the control socket) shows them as refusals.
    code = await asyncio.to_thread(cli.main, ["status", "--json", "--socket", str(sock)])
    assert code == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["refused"]["码上放心 takes only 20-digit trace codes"] == 2
    assert shown["refused"]["no bill open"] == 2
    # And the Prometheus endpoint counts them with the other refusals, by reason.
    samples = await scrape(agent)
    assert value(samples, "scanner_agent_scans_total", result="refused") == 4
    refused = "scanner_agent_scans_refused_total"
    assert value(samples, refused, reason="码上放心 takes only 20-digit trace codes") == 2
    assert value(samples, refused, reason="no bill open") == 2


async def test_a_bill_missing_a_party_is_refused_when_opened_and_at_the_scanner(
    gateway: AliHealthEmulator,
    ali_config: Callable[..., AgentConfig],
    make_config: Callable[..., AgentConfig],
    start: Any,
) -> None:
    # Without alihealth.ent_id this enterprise's side of a bill is unknown: an outbound
    # bill must name its shipper (from) and its customer (to).  Known before any scan:
    # the bill is not opened.
    cfg = ali_config(status_poll_s=0, ent_id="")
    agent = await start(cfg)
    desk = agent.daemon.desk
    assert desk is not None
    with pytest.raises(BillError, match="bill lacks a party: SO-NOFROM has no from party"):
        await desk.open("SO-NOFROM", 201, to_party="ent-customer")
    assert desk.opened("SO-NOFROM") is None
    # A bill opened while the agent synced to Trace API v1 (which needs no parties) is
    # still open after the switch to 码上放心: its scans are NAKed, none is ACKed.
    await agent.stop()
    trace_cfg = make_config(sync={**FAST_SYNC, "enabled": False}, outbox={"path": cfg.outbox.path})
    agent = await start(trace_cfg)
    assert agent.daemon.desk is not None
    await agent.daemon.desk.open("SO-OLD", 201, to_party="ent-customer")
    await agent.stop()
    agent = await start(cfg)
    (reply,) = await agent.scan(*codes(52, 1))
    assert reply.startswith("NAK "), reply
    assert "bill lacks a party: SO-OLD has no from party" in reply
    await close(agent, "SO-OLD")
    desk = agent.daemon.desk
    assert desk is not None
    await desk.open("SO-BOTH", 201, from_party="ent-self", to_party="ent-customer")
    (reply,) = await agent.scan(*codes(53, 1))
    assert reply.startswith("ACK "), reply
    await close(agent, "SO-BOTH")
    await agent.drained()
    assert stored_codes(gateway, "SO-BOTH") == codes(53, 1)
    assert await rows(agent, state=RowState.REJECTED.value) == []


async def test_rows_queued_before_the_protocol_changed_are_refused_with_the_same_reason(
    gateway: AliHealthEmulator,
    ali_config: Callable[..., AgentConfig],
    make_config: Callable[..., AgentConfig],
    start: Any,
) -> None:
    # Scans taken while syncing to Trace API v1 (which takes every scheme, no bill needed)
    # with syncing off, then the site switches to 码上放心: the sink's send-time check is
    # the same declaration as the intake's, so the dead letters say what a NAK would have.
    cfg = ali_config(status_poll_s=0)
    trace_cfg = make_config(sync={**FAST_SYNC, "enabled": False}, outbox={"path": cfg.outbox.path})
    agent = await start(trace_cfg)
    replies = await agent.scan(GS1, *codes(54, 2))
    assert [r.split(" ")[0] for r in replies] == ["ACK"] * 3
    await agent.stop()
    agent = await start(cfg)
    await agent.drained()
    refused = {r.code: r.reason or "" for r in await rows(agent, state=RowState.REJECTED.value)}
    assert set(refused) == {GS1, *codes(54, 2)}
    assert refused[GS1].startswith("码上放心 takes only 20-digit trace codes")
    assert all(
        refused[c].startswith("no bill open: open a 码上放心 bill first") for c in codes(54, 2)
    )
    assert uploads(gateway) == []


async def test_a_bill_over_10000_codes_goes_in_the_same_sub_bills_on_every_attempt(
    gateway: AliHealthEmulator, ali_config: Callable[..., AgentConfig], start: Any
) -> None:
    transport = LoseReplies()
    agent = await start(ali_config(status_poll_s=0), transport=transport)
    shipped = codes(47, 10_003)
    shipped.reverse()  # scanned out of code order: the split is by sorted code, not scan order
    await scan_bill(agent, "SO-BIG", shipped, to_party="ent-customer")
    transport.lose = 1  # the first sub-bill is stored but its reply lost: the whole bill again
    await close(agent, "SO-BIG")
    await agent.drained(within=60)
    numbers = [c["bill_code"] for c in uploads(gateway)]
    assert numbers == ["SO-BIG-1", "SO-BIG-1", "SO-BIG-2"]
    first, second = stored_codes(gateway, "SO-BIG-1"), stored_codes(gateway, "SO-BIG-2")
    assert first + second == sorted(shipped)
    assert (len(first), len(second)) == (10_000, 3)
    got = await rows(agent)
    assert {r.state for r in got} == {RowState.DELIVERED.value}
    result = {r.code: r.result for r in got}
    assert {result[c] for c in first} == {"duplicate"}  # told "exists" on the retry
    assert {result[c] for c in second} == {"accepted"}
    log = [h for h in await history(agent, "SO-BIG") if h["event"] == "upload-plan"]
    assert len(log) == 1
    assert '"SO-BIG-2"' in log[0]["detail"]


async def test_a_refused_secret_pauses_syncing_until_the_file_changes(
    gateway: AliHealthEmulator,
    ali_config: Callable[..., AgentConfig],
    start: Any,
    secret_file: Path,
) -> None:
    await asyncio.to_thread(secret_file.write_text, "not-the-secret\n")
    agent = await start(ali_config(status_poll_s=0))
    await scan_bill(agent, "SO-A", codes(48, 3), to_party="ent-customer")
    await close(agent, "SO-A")
    await eventually(
        lambda: agent.daemon.sync is not None and agent.daemon.sync.state.value == "auth_failed",
        what="auth_failed",
    )
    status = await agent.daemon.status()
    (alarm,) = status["alarms"]
    assert "Invalid signature" in alarm
    assert alarm.startswith(f"码上放心 ({gateway.url}) refused the app key or secret")
    assert f"alihealth.app_secret_file ({secret_file}) changes" in alarm
    assert "not-the-secret" not in str(status)
    assert (await agent.daemon.queue_stats()).backlog == 3
    await asyncio.to_thread(secret_file.write_text, SECRET + "\n")
    await agent.drained()
    assert stored_codes(gateway, "SO-A") == sorted(codes(48, 3))
    assert (await agent.daemon.status())["alarms"] == []


async def test_gateway_down_at_start_then_up_uploads_the_bill_once(
    ali_config: Callable[..., AgentConfig], start: Any
) -> None:
    port = free_port()
    agent = await start(ali_config(url=f"http://127.0.0.1:{port}/router/rest", status_poll_s=0))
    shipped = codes(49, 30)
    await scan_bill(agent, "SO-OUT", shipped, to_party="ent-customer")
    await close(agent, "SO-OUT")
    sync = agent.daemon.sync
    assert sync is not None
    await eventually(lambda: sync.state is LinkState.OFFLINE, what="link offline")
    status = await agent.daemon.status()
    assert status["backlog"] == 30
    assert status["sync"]["failures"] >= 1
    with AliHealthEmulator({"app1": SECRET}, port=port) as late:
        await agent.drained()
        assert len(uploads(late, "SO-OUT")) == 1
        assert stored_codes(late, "SO-OUT") == sorted(shipped)
    got = await rows(agent)
    assert {(r.state, r.result) for r in got} == {("delivered", "accepted")}
    assert sync.state is LinkState.ONLINE
    plans = [h for h in await history(agent, "SO-OUT") if h["event"] == "upload-plan"]
    assert len(plans) == 1  # every failed attempt used the one recorded plan


async def test_a_bill_the_platform_fails_to_process_raises_an_alarm_until_acknowledged(
    gateway: AliHealthEmulator,
    ali_config: Callable[..., AgentConfig],
    start: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sock = tmp_path / "control.sock"
    cfg = ali_config(control={"socket": str(sock)})
    gateway.state.fail_processing["SO-P"] = "追溯码未激活"
    agent = await start(cfg)
    await scan_bill(agent, "SO-P", codes(50, 5), to_party="ent-customer")
    await close(agent, "SO-P")
    await scan_bill(agent, "SO-OK", codes(51, 2), to_party="ent-customer")  # processed fine
    await close(agent, "SO-OK")
    await agent.drained()
    # The upload was taken: the scans are delivered; processing failed afterwards.
    assert {(r.state, r.result) for r in await rows(agent)} == {("delivered", "accepted")}

    async def alarmed() -> bool:
        return bool((await agent.daemon.status())["alarms"])

    await eventually(alarmed, what="the processing-failure alarm")
    alarms = (await agent.daemon.status())["alarms"]
    assert len(alarms) == 1
    assert "码上放心 failed to process bill SO-P" in alarms[0]
    assert "deal_status 4" in alarms[0]
    assert "追溯码未激活" in alarms[0]
    assert "scanner-agent bill ack SO-P" in alarms[0]

    errors: list[str] = []

    async def run(*argv: str) -> tuple[int, str]:
        code = await asyncio.to_thread(cli.main, list(argv))
        captured = capsys.readouterr()
        errors.append(captured.err)
        return code, captured.out

    outbox = ["--outbox", cfg.outbox.path]
    code, out = await run("bill", "failed", *outbox, "--json")
    assert code == 0
    (failure,) = [json.loads(line) for line in out.splitlines()]  # a list: JSON Lines
    assert (failure["bill"], failure["number"]) == ("SO-P", "SO-P")
    assert "追溯码未激活" in failure["detail"]
    code, out = await run("bill", "history", "SO-P", *outbox)
    assert code == 0
    # A table: a header, then date, time and zone (local), event, detail.
    events = [line.split()[3] for line in out.splitlines()[1:]]
    assert events == ["open", "close", "upload-plan", "upload", "platform-status"]
    assert "deal_status 4 (processing failed) 追溯码未激活" in out.splitlines()[-1]
    code, out = await run("bill", "history", "NO-SUCH-BILL", *outbox)
    assert code == 1  # a right command that found nothing: the operation failed
    assert "Failed to find bill 'NO-SUCH-BILL'" in errors[-1]

    # A restart reads the failure back: the alarm stays until someone handles it.
    await agent.stop()
    agent = await start(cfg)
    assert any("SO-P" in a for a in (await agent.daemon.status())["alarms"])
    s = ["--socket", str(sock)]
    code, out = await run("bill", "ack", "SO-OK", "--note", "nothing failed", *s)
    assert code == 1  # nothing to acknowledge on that bill
    assert "no unacknowledged processing failure" in errors[-1]
    code, out = await run("bill", "ack", "SO-P", "--note", "re-uploaded as SO-P2", *s)
    assert code == 0
    assert "acknowledged SO-P: SO-P" in out
    assert (await agent.daemon.status())["alarms"] == []
    code, out = await run("bill", "failed", *outbox, "--json")
    assert (code, out) == (0, "")  # an empty list: no lines
    log = await history(agent, "SO-P")
    assert log[-1]["event"] == "platform-ack"
    assert "re-uploaded as SO-P2" in log[-1]["detail"]


async def test_optional_parameters_from_config_and_bill_go_with_every_sub_bill(
    gateway: AliHealthEmulator, ali_config: Callable[..., AgentConfig], start: Any
) -> None:
    cfg = ali_config(
        max_codes=3,
        status_api="wes",
        extra={"warehouse_id": "WH-site", "from_person": "王五", "qu_receivable": 5},
    )
    agent = await start(cfg)
    desk = agent.daemon.desk
    assert desk is not None
    await desk.open(
        "SO-OPT",
        201,
        to_party="ent-customer",
        params={"warehouse_id": "WH-9", "order_code": "PO-OPT"},
    )
    shipped = codes(47, 5)
    replies = await agent.scan(*shipped)
    assert [r.split(" ")[0] for r in replies] == ["ACK"] * 5
    await close(agent, "SO-OPT")
    await agent.drained()
    sent = uploads(gateway)
    assert sorted(c["bill_code"] for c in sent) == ["SO-OPT-1", "SO-OPT-2"]
    for call in sent:
        # The bill's own value wins over the site's; the gateway checked the signature over all.
        assert (call["warehouse_id"], call["order_code"]) == ("WH-9", "PO-OPT")
        assert (call["from_person"], call["qu_receivable"]) == ("王五", "5")
        assert call["bill_type"] == "201"
    assert {(r.state, r.result) for r in await rows(agent)} == {("delivered", "accepted")}

    async def processed() -> bool:
        log = await history(agent, "SO-OPT")
        return sum(h["event"] == "platform-status" for h in log) == 2

    await eventually(processed, what="both sub-bills' deal_status in the bill log")
    with gateway.state.lock:
        asked = {c["method"] for c in gateway.state.calls if "searchstatus" in c["method"]}
    assert asked == {"alibaba.alihealth.drug.kyt.wes.searchstatus"}
    log = await history(agent, "SO-OPT")
    assert json.loads(next(h["detail"] for h in log if h["event"] == "platform-params")) == {
        "order_code": "PO-OPT",
        "warehouse_id": "WH-9",
    }


async def test_a_wrong_clock_holds_the_bill_with_an_alarm_until_the_clock_is_right(
    gateway: AliHealthEmulator,
    ali_config: Callable[..., AgentConfig],
    start: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The gateway's clock runs 15 minutes ahead: to it, the box is 15 minutes behind, past
    # TOP's 10-minute window, so every call is refused with error 31 "Invalid timestamp".
    # That is about the site, not the bill: nothing may be dead-lettered.
    gateway.state.clock_offset_s = 15 * 60
    sock = tmp_path / "control.sock"
    cfg = ali_config(
        status_poll_s=0, control={"socket": str(sock)}, metrics={"listen": "127.0.0.1:0"}
    )
    agent = await start(cfg)
    shipped = codes(55, 5)
    await scan_bill(agent, "SO-CLK", shipped, to_party="ent-customer")
    await close(agent, "SO-CLK")

    async def clock_alarm() -> bool:
        return any("clock" in a for a in (await agent.daemon.status())["alarms"])

    await eventually(clock_alarm, what="the clock alarm")
    code = await asyncio.to_thread(cli.main, ["status", "--json", "--socket", str(sock)])
    assert code == 0
    shown = json.loads(capsys.readouterr().out)
    (alarm,) = shown["alarms"]
    # Measured from the gateway's Date header (whole seconds): 15 minutes behind.
    assert re.search(r"the box's clock is (15 min 0|14 min 59) s behind the 码上放心", alarm)
    assert "31 Invalid timestamp" in alarm
    assert "timedatectl" in alarm
    assert "sent by themselves" in alarm
    assert await rows(agent, state=RowState.REJECTED.value) == []
    assert (await agent.daemon.queue_stats()).backlog == 5
    with gateway.state.lock:
        assert gateway.state.bills == {}
    assert value(await scrape(agent), "scanner_agent_alarms") == 1
    # The clock is set right: the bill goes by itself, the alarm clears.
    gateway.state.clock_offset_s = 0
    await agent.drained()
    assert stored_codes(gateway, "SO-CLK") == sorted(shipped)
    assert {(r.state, r.result) for r in await rows(agent)} == {("delivered", "accepted")}
    assert (await agent.daemon.status())["alarms"] == []
    assert value(await scrape(agent), "scanner_agent_alarms") == 0


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("ip", "IP whitelist"),
        ("permission", "API package"),
        ("app_key", "alihealth.app_key"),
    ],
)
async def test_a_caller_problem_holds_the_bill_with_an_alarm_until_it_is_fixed(
    gateway: AliHealthEmulator,
    ali_config: Callable[..., AgentConfig],
    start: Any,
    fault: str,
    expected: str,
) -> None:
    # Errors TOP documents as the caller's (permissions, IP whitelist, app key) are the
    # site's to fix on the platform: held and retried, never a dead letter.
    with gateway.state.lock:
        if fault == "ip":
            gateway.state.ip_whitelist = {"192.0.2.7"}
        elif fault == "permission":
            gateway.state.allowed_methods = {"alibaba.alihealth.drug.kyt.scqy.searchstatus"}
        else:
            secret = gateway.state.apps.pop("app1")
    agent = await start(ali_config(status_poll_s=0))
    shipped = codes(56, 3)
    await scan_bill(agent, "SO-SITE", shipped, to_party="ent-customer")
    await close(agent, "SO-SITE")

    async def alarmed() -> bool:
        return any(expected in a for a in (await agent.daemon.status())["alarms"])

    await eventually(alarmed, what=f"the {fault} alarm")
    assert await rows(agent, state=RowState.REJECTED.value) == []
    sync = agent.daemon.sync
    assert sync is not None
    assert sync.state is LinkState.DEGRADED
    with gateway.state.lock:  # fixed on the platform's side: nothing changes on the box
        gateway.state.ip_whitelist = None
        gateway.state.allowed_methods = None
        if fault == "app_key":
            gateway.state.apps["app1"] = secret
    await agent.drained()
    assert stored_codes(gateway, "SO-SITE") == sorted(shipped)
    assert (await agent.daemon.status())["alarms"] == []
