"""``scanner-agent demo``: the whole path on loopback, no hardware, no network.

Starts the reference trace service and the daemon (TCP source with ACK on a
free port) in a temporary directory, plays a simulated handheld scanner that
sends a few hundred realistic codes (some invalid, some repeated) and waits
for each ACK/NAK like a real one, then waits for the outbox to drain and
prints a summary checked against what the service actually holds.

On a terminal (and without ``--json``) the same run is shown live in the
dispatch TUI, attached to the demo's daemon over its control socket: the scans
go to a demo bill with an expected list, which is closed when the scanner is
done, so its results arrive on screen.  The TUI quits when the demo ends (or
on ``q``); the summary follows.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from drivers.tcp import TcpSource
from scanner_agent.config import config_from_dict
from scanner_agent.daemon import Daemon
from scanner_agent.outbox import RowState
from scanner_agent.simulate import SimScan, simulate
from scanner_agent.traceserver import TraceServerThread

DEMO_TOKEN = "demo-token-not-secret"  # noqa: S105 - a loopback demo's throwaway token


@dataclass
class DemoSummary:
    """What the demo reports at the end (also its ``--json`` output)."""

    scanned: int = 0
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    """Scans NAKed at the scanner, by reason (invalid codes, duplicate scans)."""
    delivered: int = 0
    """Rows the service confirmed (accepted or duplicate)."""
    service_duplicates: int = 0
    """Rows the service already held for the same code, action and bill."""
    service_rejected: dict[str, int] = field(default_factory=dict)
    """Rows the service refused, by its reason (now dead letters)."""
    still_queued: int = 0
    service_events: int = 0
    """Events the reference service holds at the end (cross-check)."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Everything accepted was settled and the service holds every delivered scan."""
        rejected = sum(self.service_rejected.values())
        return (
            self.still_queued == 0
            and self.delivered + rejected == self.accepted
            and self.service_events == self.delivered - self.service_duplicates
        )


class _Progress:
    def __init__(self, out: TextIO, total: int) -> None:
        self.out = out
        self.total = total
        self.tty = out.isatty()
        self._last = 0.0

    def show(self, text: str, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < (0.1 if self.tty else 1.0):
            return
        self._last = now
        if self.tty:
            self.out.write("\r\x1b[K" + text + ("\n" if final else ""))
        else:
            self.out.write(text + "\n")
        self.out.flush()


async def _scanner(
    port: int, lines: list[str], progress: _Progress, daemon: Daemon, pace_s: float = 0.002
) -> Counter[str]:
    """A handheld on a TCP base station: send a code, wait for ACK/NAK, repeat."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies: Counter[str] = Counter()
    try:
        for i, line in enumerate(lines, 1):
            writer.write(line.encode("utf-8") + b"\r\n")
            await writer.drain()
            reply = (await reader.readline()).decode("utf-8", "replace")
            replies["ACK" if reply.startswith("ACK ") else "NAK"] += 1
            assert daemon.sync is not None
            progress.show(
                f"scanning {i}/{len(lines)}  ACK {replies['ACK']}  NAK {replies['NAK']}  "
                f"delivered {daemon.sync.stats.delivered}  link {daemon.sync.state.value}"
            )
            await asyncio.sleep(pace_s)  # a fast operator, not a flood
    finally:
        writer.close()
        await writer.wait_closed()
    return replies


async def run_demo(
    count: int = 300,
    *,
    workdir: Path,
    out: TextIO = sys.stderr,
    control_socket: str = "",
    pace_s: float = 0.002,
    bill: bool = False,
    linger_s: float = 0.0,
) -> DemoSummary:
    """Run the demo in ``workdir`` and return its summary.

    ``control_socket`` serves the control interface (for the TUI); ``bill``
    puts the scans on a demo bill with an expected list, closed after the
    last scan; ``linger_s`` keeps the daemon up that long after the end.
    """
    started = time.monotonic()
    sims = simulate(count)
    # Two codes the "platform" does not know, to show a service-side rejection.
    unknown = frozenset([s.line for s in sims if s.kind == "cn20"][3:5])
    token_file = workdir / "token"
    token_file.write_text(DEMO_TOKEN + "\n")
    token_file.chmod(0o600)
    with TraceServerThread(workdir / "trace-service.db", DEMO_TOKEN, reject_codes=unknown) as trace:
        cfg = config_from_dict(
            {
                "device_id": "demo-dock-1",
                "scan": {"action": "ship"},
                "outbox": {"path": str(workdir / "outbox.db"), "min_free_mb": 0},
                "sync": {"url": trace.url, "token_file": str(token_file), "idle_poll_s": 0.2},
                "control": {"socket": control_socket},
            }
        )
        source = TcpSource("tcp:demo-scanner", "127.0.0.1", 0, ack=True)
        daemon = Daemon(cfg, sources=[(source, "ship", "")])
        task = asyncio.create_task(daemon.run())
        ready = asyncio.create_task(daemon.wait_ready())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            await task  # raises the start-up error
        assert source.bound is not None
        out.write(
            f"trace service on {trace.url}, agent listening on {source.bound[0]}:{source.bound[1]}, "
            f"outbox {cfg.outbox.path}\n"
        )
        progress = _Progress(out, count)
        if bill:
            await _open_demo_bill(daemon, sims)
        await _scanner(source.bound[1], [s.line for s in sims], progress, daemon, pace_s)
        if bill:
            assert daemon.desk is not None
            await daemon.desk.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stats = await daemon.queue_stats()
            assert daemon.sync is not None
            progress.show(
                f"syncing: backlog {stats.backlog}  delivered {daemon.sync.stats.delivered}  "
                f"link {daemon.sync.state.value}"
            )
            if stats.backlog == 0:
                break
            await asyncio.sleep(0.05)
        stats = await daemon.queue_stats()
        assert daemon.thread is not None
        assert daemon.intake is not None
        outbox = daemon.thread.outbox
        settled = await daemon.thread.call(outbox.rows, limit=10 * count)
        summary = DemoSummary(
            scanned=daemon.intake.stats.scanned,
            accepted=daemon.intake.stats.accepted,
            refused=dict(sorted(daemon.intake.stats.refused.items())),
            delivered=stats.counts.get(RowState.DELIVERED, 0),
            service_duplicates=sum(1 for r in settled if r.result == "duplicate"),
            service_rejected=dict(
                Counter(r.reason or "" for r in settled if r.result == "rejected")
            ),
            still_queued=stats.backlog,
            service_events=trace.store.count_events(),
        )
        progress.show(
            f"done: delivered {summary.delivered}, backlog {summary.still_queued}", final=True
        )
        await asyncio.sleep(linger_s)
        daemon.request_stop()
        await task
    summary.seconds = round(time.monotonic() - started, 2)
    return summary


async def _open_demo_bill(daemon: Daemon, sims: list[SimScan]) -> None:
    """A sales shipment expecting the simulated products (a few short, to show it)."""
    assert daemon.desk is not None
    counts = Counter(
        s.line[:7] if s.kind == "cn20" else s.line[5:19] for s in sims if s.kind in ("cn20", "gs1")
    )
    names = [
        "阿莫西林胶囊",
        "布洛芬缓释胶囊",
        "头孢克肟片",
        "连花清瘟胶囊",
        "二甲双胍缓释片",
        "阿托伐他汀钙片",
        "维生素C片",
        "氯雷他定片",
        "奥美拉唑肠溶胶囊",
        "蒙脱石散",
    ]
    rows = [
        f"{p},{names[i % len(names)]},{n + 2}" for i, (p, n) in enumerate(sorted(counts.items()))
    ]
    await daemon.desk.open(
        time.strftime("DEMO-%H%M%S"), 201, from_party="演示仓", to_party="演示药房"
    )
    await daemon.desk.import_expected(None, "product,name,count\n" + "\n".join(rows) + "\n")


def format_summary(s: DemoSummary) -> str:
    """The human summary table."""
    lines = [
        "",
        "scanner-agent demo summary",
        f"  scanned            {s.scanned}",
        f"  accepted (ACK)     {s.accepted}",
        f"  refused (NAK)      {sum(s.refused.values())}",
    ]
    lines += [
        f"    {n:>4}  {reason}" for reason, n in sorted(s.refused.items(), key=lambda kv: -kv[1])
    ]
    lines += [
        f"  delivered          {s.delivered}  (service already had {s.service_duplicates} of them)",
        f"  rejected by service {sum(s.service_rejected.values())}",
    ]
    lines += [f"    {n:>4}  {reason}" for reason, n in s.service_rejected.items()]
    lines += [
        f"  still queued       {s.still_queued}",
        f"  service holds      {s.service_events} events",
        f"  time               {s.seconds} s",
        f"  result             {'OK: every accepted scan is settled' if s.ok else 'INCOMPLETE'}",
    ]
    return "\n".join(lines)


def _run_plain(count: int, workdir: Path) -> DemoSummary:
    return asyncio.run(run_demo(count, workdir=workdir))


def _tui_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("textual") is not None


def _run_with_tui(count: int, workdir: Path) -> DemoSummary:
    """The demo on a background loop, shown in the TUI until it ends (or ``q``)."""
    import io
    import threading

    from scanner_agent.tui import BackgroundLoop, SocketAgent, make_app

    sock = workdir / "control.sock"
    done = threading.Event()
    result: list[DemoSummary] = []

    async def demo() -> None:
        try:
            result.append(
                await run_demo(
                    count,
                    workdir=workdir,
                    out=io.StringIO(),
                    control_socket=str(sock),
                    pace_s=0.03,
                    bill=True,
                    linger_s=3.0,
                )
            )
        finally:
            done.set()

    runner = BackgroundLoop(demo, name="demo")
    runner.start()
    make_app(SocketAgent(str(sock)), exit_when=done).run()
    runner.join()
    if runner.error is not None:
        raise runner.error
    return result[0]


def main(count: int = 300, *, keep: str | None = None, as_json: bool = False) -> int:
    """Entry point for ``scanner-agent demo``; exit status 0 when the demo balanced."""
    live = sys.stdout.isatty() and not as_json and _tui_available()
    run = _run_with_tui if live else _run_plain
    if keep:
        workdir = Path(keep)
        workdir.mkdir(parents=True, exist_ok=True)
        summary = run(count, workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="scanner-agent-demo-") as tmp:
            summary = run(count, Path(tmp))
    if as_json:
        print(json.dumps({**asdict(summary), "ok": summary.ok}, ensure_ascii=False))
    else:
        print(format_summary(summary))
    return 0 if summary.ok else 1
