"""Hub: the central trace service under many docks, SQLite against PostgreSQL with 1 and 2 workers.

``BENCH_AGENTS`` (50) simulated agents each send ``BENCH_BATCHES`` (4) batches of
``BENCH_EVENTS`` (500) events, all at once, each agent over its own keep-alive
connection (httpx, asyncio, one client process), to a ``scanner-agent
trace-server`` running in its own process(es) on loopback: the SQLite backend,
then PostgreSQL (a throwaway cluster from Debian's packages, as the tests start
it: ``tests/support/postgres.py``) with 1 and with 2 worker processes.  Each
backend gets the same events, into a fresh store.

Reported per backend: events stored per second (all events / wall time from
the first request to the last reply), p50 and p99 batch latency, and whether
the store holds exactly the events sent, once (its event count equals the
events sent and every reply says ``accepted``).  The client shares the 2 cores
with the server, which flatters no backend.

Progress goes to stderr; the last line of stdout is one JSON object with
``postgres_events_per_s`` (best worker count), ``sqlite_events_per_s``,
``p99_batch_ms`` (PostgreSQL, best worker count) and ``held_once`` (true only
when every backend held every event exactly once).  Not part of the test suite
(``make bench`` runs it).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scanner_agent.traceserver import migrate, open_store  # noqa: E402
from tests.support.postgres import MISSING, PostgresCluster, find_bindir  # noqa: E402

AGENTS = int(os.environ.get("BENCH_AGENTS", "50"))
BATCHES = int(os.environ.get("BENCH_BATCHES", "4"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "500"))
TOKEN = "bench-token"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body(agent: int, n: int) -> bytes:
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
    batch = {
        "batch_id": f"{device}-b{n}",
        "device_id": device,
        "sent_at": "2026-12-07T08:00:00.000Z",
        "events": events,
    }
    return json.dumps(batch, separators=(",", ":")).encode()


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


async def drive(url: str, bodies: list[list[bytes]]) -> tuple[float, list[float], bool]:
    """Every agent sends its batches in turn; (wall seconds, batch latencies, all accepted)."""
    latencies: list[float] = []
    accepted = True

    async def agent(batches: list[bytes]) -> None:
        nonlocal accepted
        async with httpx.AsyncClient(
            base_url=url, timeout=120, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            for raw in batches:
                key = json.loads(raw[: raw.index(b',"device_id"')] + b"}")["batch_id"]
                started = time.perf_counter()
                response = await client.post(
                    "/v1/batches",
                    content=raw,
                    headers={"Idempotency-Key": key, "Content-Type": "application/json"},
                )
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200 or any(
                    r["status"] != "accepted" for r in response.json()["results"]
                ):
                    accepted = False

    started = time.perf_counter()
    await asyncio.gather(*(agent(b) for b in bodies))
    return time.perf_counter() - started, latencies, accepted


def run(db: str, workers: int, token_file: Path, bodies: list[list[bytes]]) -> dict[str, object]:
    process, url = start_server(db, workers, token_file)
    try:
        wall, latencies, accepted = asyncio.run(drive(url, bodies))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    store = open_store(db)
    try:
        held = store.count_events()
    finally:
        store.close()
    sent = AGENTS * BATCHES * EVENTS
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "events_per_s": round(sent / wall),
        "p50_batch_ms": round(cuts[49] * 1000, 1),
        "p99_batch_ms": round(cuts[98] * 1000, 1),
        "held_once": accepted and held == sent,
    }


def main() -> None:
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit(MISSING)
    bodies = [[body(a, n) for n in range(BATCHES)] for a in range(AGENTS)]
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as tmp:
        token_file = Path(tmp) / "token"
        token_file.write_text(TOKEN + "\n")
        token_file.chmod(0o600)
        log(f"{AGENTS} agents x {BATCHES} batches x {EVENTS} events")
        results["sqlite"] = run(str(Path(tmp) / "trace.db"), 1, token_file, bodies)
        log(f"sqlite: {results['sqlite']}")
        cluster = PostgresCluster(bindir).start()
        try:
            for workers in (1, 2):
                url = cluster.create_database()
                migrate(url)
                results[f"postgres_{workers}w"] = run(url, workers, token_file, bodies)
                log(f"postgres {workers} worker(s): {results[f'postgres_{workers}w']}")
        finally:
            cluster.stop()
    best = max(("postgres_1w", "postgres_2w"), key=lambda k: int(str(results[k]["events_per_s"])))
    print(
        json.dumps(
            {
                "backends": results,
                "postgres_best": best,
                "postgres_events_per_s": results[best]["events_per_s"],
                "sqlite_events_per_s": results["sqlite"]["events_per_s"],
                "p99_batch_ms": results[best]["p99_batch_ms"],
                "held_once": all(r["held_once"] for r in results.values()),
            }
        )
    )


if __name__ == "__main__":
    main()
