"""Hub: the central trace service under many docks, SQLite against PostgreSQL with 1 and 2 workers.

``BENCH_AGENTS`` (50) simulated agents send batches of ``BENCH_EVENTS`` (500)
events, each agent over its own keep-alive connection (httpx, asyncio, one
client process), to a ``scanner-agent trace-server`` running in its own
process(es) on loopback: the SQLite backend, then PostgreSQL (a throwaway
cluster from Debian's packages, as the tests start it:
``tests/support/postgres.py``) with 1 and with 2 worker processes.  Each
backend gets the same events, into a fresh store, in two phases:

* **saturated**: every agent sends ``BENCH_BATCHES`` (8) batches back to back,
  all agents at once: the most events per second the backend stores.  Its
  latency is mostly queueing: with 50 batches always in flight, the mean
  latency is 50 × 500 events / throughput (Little's law), 1.25 s at 20,000
  events/s, whatever the server does;
* **paced**: the agents together offer ``BENCH_RATE`` (20,000) events/s for
  ``BENCH_PACED_S`` (15) seconds, each sending one batch every
  ``agents × events / rate`` seconds (1.25 s), staggered: the latency of a
  sustained load, as docks send when their batch is full.  A batch's latency
  runs from the moment it was due, not the moment it went out, so a client or
  server falling behind shows in full; ``events_per_s`` is what was stored
  over the phase (below the offered rate when the backend cannot sustain it).

Reported per backend and phase: events stored per second, p50 and p99 batch
latency, the CPU seconds of the client (this process), the server (its
process tree) and PostgreSQL (the cluster's process tree), and the 1-minute
load average before and after (the box is shared: the client and the server
share its 2 cores, and other work may run).  Afterwards the store must hold
exactly the events sent, once (its event count equals the events sent and
every reply says ``accepted``).

Progress goes to stderr; the last line of stdout is one JSON object with
``postgres_events_per_s`` (the saturated rate of the best worker count),
``sqlite_events_per_s`` (saturated), ``p99_batch_ms`` (PostgreSQL, best worker
count, paced at the offered rate), ``p99_batch_ms_saturated`` (same backend,
saturated), ``offered_events_per_s`` and ``held_once`` (true only when every
backend held every event exactly once).  Not part of the test suite (``make
bench`` runs it).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scanner_agent.traceserver import migrate, open_store  # noqa: E402
from tests.support.postgres import MISSING, PostgresCluster, find_bindir  # noqa: E402

AGENTS = int(os.environ.get("BENCH_AGENTS", "50"))
BATCHES = int(os.environ.get("BENCH_BATCHES", "8"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "500"))
RATE = int(os.environ.get("BENCH_RATE", "20000"))
PACED_S = float(os.environ.get("BENCH_PACED_S", "15"))
DURABLE = os.environ.get("BENCH_PG_DURABLE", "1") != "0"
"""PostgreSQL with its own durability (fsync, synchronous commit, full page writes), as a site
runs it; ``BENCH_PG_DURABLE=0`` gives the tests' throwaway settings (no fsync)."""
TOKEN = "bench-token"
PERIOD = AGENTS * EVENTS / RATE
"""Seconds between two batches of one agent in the paced phase."""
PACED_BATCHES = max(1, round(PACED_S / PERIOD))
ACCEPTED = b'"status":"accepted"'

Bodies = list[list[tuple[str, bytes]]]
"""Per agent, its batches in order: ``(batch_id, body)``."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body(agent: int, n: int) -> tuple[str, bytes]:
    """Batch ``n`` of agent ``agent``: its id and its compact JSON body, events all new."""
    device = f"dock-{agent:03d}"
    events = [
        {
            "event_id": f"{device}-{n:04d}-{i:04d}",
            "code": f"8{agent:03d}{n:06d}{i:010d}",
            "scheme": "cn20",
            "action": "ship",
            "bill": f"SO-{agent:03d}-{n:04d}",
            "scanned_at": "2026-12-07T08:00:00.000Z",
            "source": f"tcp:{device}",
        }
        for i in range(EVENTS)
    ]
    batch_id = f"{device}-b{n}"
    batch = {
        "batch_id": batch_id,
        "device_id": device,
        "sent_at": "2026-12-07T08:00:00.000Z",
        "events": events,
    }
    return batch_id, json.dumps(batch, separators=(",", ":")).encode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live descendants (and the reaped ones they waited for)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo, seen = [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            for task in os.listdir(f"/proc/{current}/task"):
                kids = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                todo += [int(kid) for kid in kids]
        except OSError:  # exited meanwhile
            continue
        total += sum(int(value) for value in fields[11:15]) / tick
    return total


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start_server(db: str, workers: int, token_file: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [sys.executable, "-m", "scanner_agent", "trace-server", "--db", db]
    argv += ["--listen", f"127.0.0.1:{port}", "--token-file", str(token_file)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"trace-server did not start ({db})")
        time.sleep(0.1)


class Phase:
    """One phase's figures: latencies, whether every reply accepted every event, CPU and load."""

    def __init__(self, meters: dict[str, Callable[[], float]]) -> None:
        self.meters = meters
        self.latencies: list[float] = []
        self.accepted = True
        self.cpu0 = {name: meter() for name, meter in meters.items()}
        self.load0 = os.getloadavg()[0]
        self.started = time.perf_counter()

    def finish(self) -> None:
        """The phase's end: its wall time, CPU and load, taken while every process still runs."""
        self.wall = time.perf_counter() - self.started
        self.cpu = {
            name: round(meter() - self.cpu0[name], 2) for name, meter in self.meters.items()
        }
        self.load1 = os.getloadavg()[0]

    def result(self, events: int) -> dict[str, object]:
        cuts = statistics.quantiles(self.latencies, n=100)
        return {
            "events_per_s": round(events / self.wall),
            "p50_batch_ms": round(cuts[49] * 1000, 1),
            "p99_batch_ms": round(cuts[98] * 1000, 1),
            "wall_s": round(self.wall, 2),
            "cpu_s": self.cpu,
            "client_cpu_share": round(self.cpu["client"] / max(sum(self.cpu.values()), 1e-9), 2),
            "load_1min": [round(self.load0, 2), round(self.load1, 2)],
        }


async def send(
    client: httpx.AsyncClient, phase: Phase, batch: tuple[str, bytes], due: float
) -> None:
    """POST one batch; its latency counts from ``due``; every event must come back accepted."""
    key, raw = batch
    response = await client.post(
        "/v1/batches",
        content=raw,
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    phase.latencies.append(time.perf_counter() - due)
    # One "status" per result: EVENTS of them accepted is every event accepted.
    if response.status_code != 200 or response.content.count(ACCEPTED) != EVENTS:
        phase.accepted = False


async def drive(
    url: str, saturated: Bodies, paced: Bodies, meters: dict[str, Callable[[], float]]
) -> tuple[Phase, Phase]:
    """Both phases over one set of warm keep-alive connections (one per agent)."""
    tls = ssl.create_default_context()  # plain HTTP here; made once, not once per client
    clients = [
        httpx.AsyncClient(
            base_url=url, timeout=120, verify=tls, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        for _ in saturated
    ]
    try:
        for client in clients:  # connect (and import what httpx imports lazily) off the clock
            (await client.get("/v1/health")).raise_for_status()

        async def back_to_back(client: httpx.AsyncClient, batches: list[tuple[str, bytes]]) -> None:
            for batch in batches:
                await send(client, first, batch, time.perf_counter())

        first = Phase(meters)
        await asyncio.gather(*(back_to_back(c, b) for c, b in zip(clients, saturated, strict=True)))
        first.finish()

        async def on_schedule(
            client: httpx.AsyncClient, batches: list[tuple[str, bytes]], offset: float
        ) -> None:
            for n, batch in enumerate(batches):
                due = second.started + offset + n * PERIOD
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                await send(client, second, batch, due)

        second = Phase(meters)
        await asyncio.gather(
            *(
                on_schedule(c, b, a * PERIOD / AGENTS)
                for a, (c, b) in enumerate(zip(clients, paced, strict=True))
            )
        )
        second.finish()
        return first, second
    finally:
        for client in clients:
            await client.aclose()


def run(
    db: str,
    workers: int,
    token_file: Path,
    saturated: Bodies,
    paced: Bodies,
    postmaster: int | None,
) -> dict[str, object]:
    process, url = start_server(db, workers, token_file)
    meters: dict[str, Callable[[], float]] = {
        "client": own_cpu,
        "server": lambda: cpu_seconds(process.pid),
    }
    if postmaster is not None:
        meters["postgres"] = lambda: cpu_seconds(postmaster)
    try:
        first, second = asyncio.run(drive(url, saturated, paced, meters))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    store = open_store(db)
    try:
        held = store.count_events()
    finally:
        store.close()
    sent = AGENTS * (BATCHES + PACED_BATCHES) * EVENTS
    return {
        "saturated": first.result(AGENTS * BATCHES * EVENTS),
        "paced": {"offered_events_per_s": RATE, **second.result(AGENTS * PACED_BATCHES * EVENTS)},
        "held_once": first.accepted and second.accepted and held == sent,
    }


def postmaster_pid(cluster: PostgresCluster) -> int:
    return int((cluster.socket_dir / "data" / "postmaster.pid").read_text().split()[0])


def main() -> None:
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit(MISSING)
    saturated = [[body(a, n) for n in range(BATCHES)] for a in range(AGENTS)]
    paced = [[body(a, n) for n in range(BATCHES, BATCHES + PACED_BATCHES)] for a in range(AGENTS)]
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as tmp:
        token_file = Path(tmp) / "token"
        token_file.write_text(TOKEN + "\n")
        token_file.chmod(0o600)
        log(
            f"{AGENTS} agents x {EVENTS} events: saturated {BATCHES} batches each, then paced"
            f" {RATE} events/s offered ({PACED_BATCHES} batches each, one per {PERIOD:g} s)"
        )
        sqlite = str(Path(tmp) / "trace.db")
        results["sqlite"] = run(sqlite, 1, token_file, saturated, paced, None)
        log(f"sqlite: {results['sqlite']}")
        cluster = PostgresCluster(bindir, durable=DURABLE).start()
        try:
            for workers in (1, 2):
                url = cluster.create_database()
                migrate(url)
                key = f"postgres_{workers}w"
                results[key] = run(
                    url, workers, token_file, saturated, paced, postmaster_pid(cluster)
                )
                log(f"postgres {workers} worker(s): {results[key]}")
        finally:
            cluster.stop()

    def figure(backend: str, phase: str, name: str) -> object:
        values = results[backend][phase]
        assert isinstance(values, dict)
        return values[name]

    best = max(
        ("postgres_1w", "postgres_2w"),
        key=lambda k: int(str(figure(k, "saturated", "events_per_s"))),
    )
    print(
        json.dumps(
            {
                "backends": results,
                "postgres_best": best,
                "postgres_events_per_s": figure(best, "saturated", "events_per_s"),
                "sqlite_events_per_s": figure("sqlite", "saturated", "events_per_s"),
                "p99_batch_ms": figure(best, "paced", "p99_batch_ms"),
                "p99_batch_ms_saturated": figure(best, "saturated", "p99_batch_ms"),
                "offered_events_per_s": RATE,
                "held_once": all(r["held_once"] for r in results.values()),
                "postgres_durable": DURABLE,
            }
        )
    )


if __name__ == "__main__":
    main()
