"""Every report of row and bill states agrees, on one outbox holding every state.

The outbox (``tests/everystate.py``) is built through the library's own calls;
a real daemon then serves it (sync off, so nothing moves) and every reader is
asked: the outbox API, ``queue stats`` (JSON and text), ``queue ls`` (JSON and
``--state`` per state), ``doctor``, ``status`` over the control socket (raw and
through the CLI), ``queue.stats`` over the socket, a Prometheus scrape, the TUI
(its data source, and what it draws), and the bill commands.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from scanner_agent.config import AgentConfig
from scanner_agent.control import ControlClient
from scanner_agent.outbox import Outbox
from tests.everystate import DEFAULT_BILL, EveryState, build
from tests.support.polling import eventually

STATES = ("pending", "held", "in_flight", "delivered", "rejected", "removed", "quarantined")
"""The row states the file holds (each reader must report all of them)."""


async def cli(*args: str) -> tuple[int, str, str]:
    """``scanner-agent ARGS`` as a real subprocess (the event loop keeps serving meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scanner_agent",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def cli_ok(*args: str) -> str:
    code, out, err = await cli(*args)
    assert code == 0, f"scanner-agent {' '.join(args)} exited {code}: {err}"
    return out


async def call(sock: Path, cmd: str, **args: Any) -> Any:
    def go() -> Any:
        with ControlClient(str(sock), timeout=30) as client:
            return client.call(cmd, **args)

    return await asyncio.to_thread(go)


def config_file(tmp_path: Path, outbox: Path, sock: Path, token: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'device_id = "test-dock"\n[outbox]\npath = "{outbox}"\nmin_free_mb = 0\n'
        f'[sync]\nenabled = false\ntoken_file = "{token}"\n[control]\nsocket = "{sock}"\n'
    )
    return path


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


async def test_every_reader_reports_the_same_state_counts(
    tmp_path: Path,
    make_config: Callable[..., AgentConfig],
    start_agent: Callable[..., Any],
    token_file: Path,
) -> None:
    every: EveryState = build(tmp_path / "outbox.db")
    outbox = str(every.path)
    sock = tmp_path / "control.sock"
    want = every.counts
    assert set(want) == set(STATES)

    # The library, before any daemon touches the file.
    with Outbox.open_readonly(every.path) as box:
        stats = box.stats()
        assert stats.counts == want
        assert (stats.backlog, stats.held, stats.removed) == (every.backlog, 1, 4)
        assert sum(stats.counts.values()) == len(box.rows(limit=1000))

    agent = await start_agent(
        make_config(
            sync={"enabled": False},
            control={"socket": str(sock)},
            metrics={"listen": "127.0.0.1:0"},
        )
    )

    # queue stats, JSON and text.
    data = json.loads(await cli_ok("queue", "stats", "--outbox", outbox, "--json"))
    assert data["counts"] == want
    assert (data["backlog"], data["held"], data["removed"]) == (every.backlog, 1, 4)
    text = await cli_ok("queue", "stats", "--outbox", outbox)
    shown = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", text, re.M)}
    assert {s: shown.get(s) for s in STATES} == want, text
    assert shown["backlog"] == every.backlog

    # queue ls: every row once, with its state; and each state as a filter.
    rows = [
        json.loads(line)
        for line in (await cli_ok("queue", "ls", "--outbox", outbox, "--json", "--limit", "1000"))
        .strip()
        .splitlines()
    ]
    assert Counter(r["state"] for r in rows) == Counter(nonzero(want))
    listed = await asyncio.gather(
        *(
            cli_ok("queue", "ls", "--outbox", outbox, "--state", s, "--limit", "1000")
            for s in STATES
        )
    )
    # A table: its header, then one line per row (or "no rows match").
    shown_rows = {s: out.strip().splitlines()[1:] for s, out in zip(STATES, listed, strict=True)}
    assert {s: len(lines) for s, lines in shown_rows.items()} == want
    for s, lines in shown_rows.items():
        assert all(line.split()[1] == s for line in lines), lines

    # doctor: "not yet delivered" is the backlog, removed scans left out.
    cfg = config_file(tmp_path, every.path, sock, token_file)
    _code, out, _err = await cli("doctor", "--json", "-c", str(cfg))
    (check,) = [c for c in json.loads(out)["checks"] if c["name"] == "outbox"]
    assert f"{every.backlog} scans not yet delivered" in check["detail"], check

    # status over the control socket, raw and through the CLI.
    for status in (
        await call(sock, "status"),
        json.loads(await cli_ok("status", "--json", "--socket", str(sock))),
    ):
        assert status["queue"] == want
        assert (status["backlog"], status["held"], status["removed"]) == (every.backlog, 1, 4)
        assert [(b["number"], b["state"]) for b in status["bills"]] == [("SO-OPEN", "open")]
    queue = await call(sock, "queue.stats")
    assert queue["counts"] == want

    # A Prometheus scrape.
    server = agent.daemon.metrics_server
    assert server is not None
    host, port = server.address_or_raise()
    reply = await asyncio.to_thread(httpx.get, f"http://{host}:{port}/metrics", timeout=30)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }
    assert {s: samples[("scanner_agent_outbox_rows", (("state", s),))] for s in STATES} == want
    assert samples[("scanner_agent_outbox_backlog", ())] == every.backlog

    # The bill commands: each bill's state and per-state counts, and they add up.
    listed_bills = [
        json.loads(line)
        for line in (await cli_ok("bill", "list", "--json", "--socket", str(sock)))
        .strip()
        .splitlines()
    ]
    assert {b["number"]: b["state"] for b in listed_bills} == {
        k: v for k, v in every.bills.items() if k != DEFAULT_BILL
    }
    total: Counter[str] = Counter()
    for number, state in every.bills.items():
        view = json.loads(
            await cli_ok("bill", "show", number, "--json", "--scans", "100", "--socket", str(sock))
        )
        bill = view["bill"]
        assert bill["state"] == state, number
        counts = {s: bill["totals"][s] for s in STATES}
        assert nonzero(counts) == every.bill_counts[number], number
        assert Counter(s["state"] for s in view["scans"]) == Counter(every.bill_counts[number])
        assert bill["totals"]["scans"] == sum(counts.values()) - counts["removed"]
        total.update(counts)
    assert {s: total[s] for s in STATES} == want
    text = await cli_ok("bill", "list", "--socket", str(sock))
    for number, state in every.bills.items():
        if number != DEFAULT_BILL:
            assert re.search(rf"^{number}\s.*\s{state}\s", text, re.M), text
    history = await call(sock, "lookup", code=f"8{14:019d}")
    assert [r["state"] for r in history["scans"]] == ["removed"]

    # The TUI: its data source, then what it draws from it.
    if importlib.util.find_spec("textual") is not None:
        await _tui_agrees(sock, every)
    await agent.stop()


async def _tui_agrees(sock: Path, every: EveryState) -> None:
    from textual.widgets import Static

    from scanner_agent.tui import DispatchApp, SocketAgent

    source = SocketAgent(str(sock))
    try:
        status = await asyncio.to_thread(source.call, "status")
        assert status["queue"] == every.counts
        view = await asyncio.to_thread(source.call, "bill.show", number="SO-EMPTY")
        assert view["bill"]["state"] == "empty"
    finally:
        source.close()

    app = DispatchApp(SocketAgent(str(sock)), blink=False, poll_s=0.1, reconnect_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:

        def drawn(widget: str) -> str:
            return str(app.query_one(widget, Static).render())

        await eventually(
            lambda: (
                app.dispatch.connected
                and app.dispatch.bill_view is not None
                and "backlog" in drawn("#link-summary")
            ),
            what="the TUI's link summary",
            pause=pilot.pause,
        )
        link = drawn("#link-summary")
        for state, n in every.counts.items():
            assert f"{state.replace('_', ' ')} {n}" in link, link
        assert f"backlog   {every.backlog}" in link, link
        summary = drawn("#bill-summary")
        for part in ("SO-OPEN", "held 1", "removed 2"):
            assert part in summary, summary
