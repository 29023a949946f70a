"""Sync: how fast the outbox reaches the trace service, batched and pipelined, against one POST per scan.

The reference trace service runs in a **separate process** (``scanner-agent
trace-server``, its own interpreter and GIL) on loopback; the agent side is the
real ``SyncLoop`` with a real SQLite outbox (WAL, synchronous=FULL) and outbox
thread, configured with the shipped defaults unless overridden below.

1. ``bill_10k_s``: a bill of 10,000 scans is committed to the outbox in one
   transaction while the link is idle and warm; the clock starts when that
   COMMIT has returned and the loop is woken (as the group committer does) and
   stops when the last result is recorded (the rows read delivered).  Repeated
   ``BENCH_BILL_RUNS`` times, median reported.
2. ``drain_per_s``: a backlog of ``BENCH_BACKLOG`` (200,000) scans queued while
   syncing was off ("a week offline"); a fresh ``SyncLoop`` starts, and the
   clock stops when every row reads delivered.
3. ``peer_per_s``: the same events sent the way many scanner apps do it, one
   ``POST`` per scan, sequentially, over the same kind of keep-alive client
   (``TraceApiClient``, one event per batch, no gzip), to a fresh service
   process, for ``BENCH_PEER_SECONDS`` (10 s).  The peer does no local
   bookkeeping at all (no lease, no settle), which flatters it.

Progress goes to stderr; the last line of stdout is one JSON object.  Not part
of the test suite (``make bench`` runs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from scanner_agent.config import SyncConfig
from scanner_agent.interpreter import tune_interpreter
from scanner_agent.outbox import Batch, BatchEvent, NewScan, Outbox, OutboxThread, uuid7
from scanner_agent.sinks.trace_api import TraceApiClient
from scanner_agent.sync import SyncLoop

TOKEN = "bench-token"
BACKLOG = int(os.environ.get("BENCH_BACKLOG", "200000"))
BILL = int(os.environ.get("BENCH_BILL", "10000"))
BILL_RUNS = int(os.environ.get("BENCH_BILL_RUNS", "5"))
PEER_SECONDS = float(os.environ.get("BENCH_PEER_SECONDS", "10"))


def sync_config(url: str) -> SyncConfig:
    """The shipped defaults, with the tuning knobs overridable from the environment."""
    overrides: dict[str, object] = {"url": url, "idle_poll_s": 0.5}
    for key, cast in (
        ("batch_size", int),
        ("batch_bytes", int),
        ("max_in_flight", int),
        ("gzip_level", int),
    ):
        value = os.environ.get(f"BENCH_{key.upper()}")
        if value is not None:
            overrides[key] = cast(value)
    if os.environ.get("BENCH_GZIP") == "0":
        overrides["gzip"] = False
    return SyncConfig(**overrides)  # type: ignore[arg-type]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def scans(prefix: int, n: int, bill: str) -> list[NewScan]:
    """Distinct valid cn20 scans (none refused as a duplicate)."""
    return [
        NewScan(
            event_id=uuid7(),
            code=f"8{prefix:02d}{i:017d}",
            scheme="cn20",
            raw=f"8{prefix:02d}{i:017d}",
            symbology=None,
            action="receive",
            bill=bill,
            device_id="bench-dock",
            source="tcp:10.0.0.7",
            scanned_at="2026-03-01T09:30:00.123+08:00",
        )
        for i in range(n)
    ]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def trace_service(db: Path) -> Iterator[str]:
    """``scanner-agent trace-server`` in its own process; yields its URL once healthy."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scanner_agent",
            "trace-server",
            "--listen",
            f"127.0.0.1:{port}",
            "--db",
            str(db),
            "--token-env",
            "BENCH_TRACE_TOKEN",
        ],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "BENCH_TRACE_TOKEN": TOKEN},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("trace server did not start")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


class Agent:
    """An outbox, its thread and a running SyncLoop."""

    def __init__(self, path: Path, cfg: SyncConfig) -> None:
        self.outbox = Outbox.open(path)
        self.thread = OutboxThread(self.outbox)
        self.cfg = cfg
        self.loop: SyncLoop | None = None
        self.client: TraceApiClient | None = None
        self.task: asyncio.Task[None] | None = None

    async def queue(self, batch: list[NewScan]) -> None:
        for i in range(0, len(batch), 10_000):
            await self.thread.call(self.outbox.enqueue_many, batch[i : i + 10_000])

    def start(self) -> SyncLoop:
        self.client = TraceApiClient(self.cfg, token=TOKEN, device_id="bench-dock")
        self.loop = SyncLoop(self.thread, self.client, self.cfg, token_reader=lambda: TOKEN)
        self.task = asyncio.create_task(self.loop.run())
        return self.loop

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.client is not None:
            await self.client.aclose()
        self.task = self.loop = self.client = None

    async def close(self) -> None:
        await self.stop()
        self.thread.shutdown()
        self.outbox.close()


async def until_delivered(loop: SyncLoop, target: int, within: float = 600.0) -> None:
    """Wait until the loop has recorded ``target`` delivered scans (checked every millisecond)."""
    deadline = time.monotonic() + within
    while loop.stats.delivered < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {loop.stats.delivered} of {target} delivered: {loop.stats}")
        await asyncio.sleep(0.001)


async def bill_and_drain(root: Path, url: str) -> dict[str, object]:
    cfg = sync_config(url)
    agent = Agent(root / "agent.db", cfg)
    try:
        loop = agent.start()
        await agent.queue(scans(1, 100, "WARM-UP"))
        loop.wake()
        await until_delivered(loop, 100)  # connections open, window open
        runs: list[float] = []
        for run in range(BILL_RUNS):
            await asyncio.sleep(0.5)  # the link is idle when the bill is queued
            done = loop.stats.delivered
            await agent.queue(scans(10 + run, BILL, f"PO-BILL-{run}"))
            t0 = time.perf_counter()
            loop.wake()
            await until_delivered(loop, done + BILL)
            runs.append(time.perf_counter() - t0)
            log(f"bill of {BILL}: all results recorded {runs[-1] * 1000:.0f} ms after commit")
        await agent.stop()

        log(f"queueing a backlog of {BACKLOG} scans with syncing off ...")
        await agent.queue(scans(50, BACKLOG, "PO-BACKLOG"))
        loop = agent.start()
        t0 = time.perf_counter()
        await until_delivered(loop, BACKLOG)
        drain_s = time.perf_counter() - t0
        stats = await agent.thread.call(agent.outbox.stats)
        if stats.backlog:
            raise RuntimeError(f"rows left undelivered after the drain: {stats}")
        log(
            f"drain: {BACKLOG} scans in {drain_s:.2f} s = {BACKLOG / drain_s:,.0f}/s "
            f"({loop.stats.batches} batches, {loop.stats.failures} failures)"
        )
    finally:
        await agent.close()
    return {
        "bill_runs_s": [round(r, 4) for r in runs],
        "bill_10k_s": round(statistics.median(runs), 4),
        "drain_s": round(drain_s, 3),
        "drain_per_s": round(BACKLOG / drain_s),
    }


async def one_post_per_scan(url: str) -> dict[str, object]:
    """The peer: each scan its own POST, one after another, on one keep-alive client."""
    cfg = dataclasses.replace(sync_config(url), gzip=False)
    client = TraceApiClient(cfg, token=TOKEN, device_id="bench-dock")
    events = scans(50, BACKLOG, "PO-BACKLOG")
    sent = 0
    try:
        t0 = time.perf_counter()
        stop = t0 + PEER_SECONDS
        for i, s in enumerate(events):
            event = BatchEvent(
                i, s.event_id, s.code, s.scheme, s.action, s.bill, s.scanned_at, s.source
            )
            results = await client.send_batch(Batch(uuid7(), (event,), 0))
            if results[s.event_id].status != "accepted":
                raise RuntimeError(f"peer: {s.event_id} answered {results[s.event_id]}")
            sent += 1
            if time.perf_counter() >= stop:
                break
        dt = time.perf_counter() - t0
    finally:
        await client.aclose()
    log(f"peer, one POST per scan: {sent} scans in {dt:.2f} s = {sent / dt:,.0f}/s")
    return {"peer_scans": sent, "peer_s": round(dt, 3), "peer_per_s": round(sent / dt)}


def event_ids(db: Path, table: str) -> list[str]:
    """Every ``event_id`` in ``table`` of a (closed) SQLite file."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return [row[0] for row in conn.execute(f"SELECT event_id FROM {table}")]


def check_held_once(agent_db: Path, service_db: Path) -> int:
    """Raise unless the service holds exactly the events the agent queued, each once; how many."""
    queued, held = event_ids(agent_db, "scans"), event_ids(service_db, "events")
    if len(held) != len(set(held)) or set(held) != set(queued) or len(queued) != len(set(queued)):
        raise RuntimeError(
            f"service holds {len(held)} events ({len(set(held))} ids), agent queued "
            f"{len(queued)} ({len(set(queued) - set(held))} missing, "
            f"{len(set(held) - set(queued))} unknown)"
        )
    return len(held)


def main() -> None:
    tune_interpreter()  # as `scanner-agent run` does at start
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-sync-", dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        with trace_service(root / "trace.db") as url:
            ours = asyncio.run(bill_and_drain(root, url))
        # What the agent counted as delivered, checked against the service's own file.
        held = check_held_once(root / "agent.db", root / "trace.db")
        with trace_service(root / "peer-trace.db") as url:
            peer = asyncio.run(one_post_per_scan(url))
    cfg = sync_config("http://x")
    result = {
        "benchmark": "sync",
        "server": "separate process (scanner-agent trace-server), loopback",
        "backlog": BACKLOG,
        "bill": BILL,
        **ours,
        **peer,
        "ratio": round(int(ours["drain_per_s"]) / int(peer["peer_per_s"]), 1),  # type: ignore[call-overload]
        "service_held_once": held,
        "batch_size": cfg.batch_size,
        "batch_bytes": cfg.batch_bytes,
        "max_in_flight": cfg.max_in_flight,
        "gzip": cfg.gzip,
        "gzip_level": cfg.gzip_level,
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
