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

``--protocol`` picks what the daemon syncs to (``docs/platforms.md``):

* ``trace-api`` (default): the reference trace service.
* ``alihealth``: the 码上放心 gateway emulator.  The daemon signs with an app
  secret kept in a mode-0600 file of the work directory; the scans go on a 201
  (sales) bill with an optional parameter of its own (``order_code``) next to
  the site-wide ``alihealth.extra`` (``warehouse_id``), and are uploaded when
  it is closed.  Then two of its boxes are scanned onto a second sales bill,
  which the platform refuses (sold already) with its message.  GS1 codes are
  NAKed at the scanner: the 码上放心 sink declares it takes only its own codes.
* ``epcis``: the EPCIS 2.0 repository emulator (bearer token in a mode-0600
  file); two cn20 codes are unknown to it, so their events are refused with
  its reason.

The verdict is honest about the good-read promise.  ``OK`` only when every
accepted (ACKed) scan was delivered.  Scans the platform refused for reasons
only it knows (a code it does not know, a box sold already) are listed with
its reasons and the demo still succeeds: the agent could not have known.  A
scan that was ACKed and later refused for a reason the agent knew at scan
time (its sink's declared admission rule) breaks the promise: the verdict
says so and the exit status is 1, as it is when scans are left unsettled.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from drivers.tcp import TcpSource
from scanner_agent.bills import BillBook, BillError
from scanner_agent.cli.output import EXIT_FAILED, EXIT_OK
from scanner_agent.codes import parse_scan
from scanner_agent.config import AgentConfig, config_from_dict
from scanner_agent.daemon import Daemon
from scanner_agent.lab._demo_services import (
    Service,
    bill_lines,
    open_demo_bill,
    start_service,
    wait_for_status,
)
from scanner_agent.lab.simulate import simulate
from scanner_agent.outbox import Outbox, OutboxRow, RowState
from scanner_agent.sync import Admission

DEMO_PROTOCOLS: tuple[str, ...] = ("trace-api", "alihealth", "epcis")
"""What ``scanner-agent demo --protocol`` can sync to."""


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
    acked_then_refused: dict[str, int] = field(default_factory=dict)
    """Of those, rows refused for a reason the agent knew when it ACKed them (its sink's
    admission rule, or its own parser), by reason: a broken good-read promise."""
    still_queued: int = 0
    service_events: int = 0
    """Events the service holds at the end (cross-check): Trace API events, EPCIS
    ObjectEvents, or trace codes of the bills 码上放心 took."""
    protocol: str = "trace-api"
    service: str = ""
    """What the daemon synced to, for people."""
    bills: list[str] = field(default_factory=list)
    """码上放心: each uploaded (sub-)bill's verdict from the bill log, with the platform's
    message and the optional parameters it received."""
    seconds: float = 0.0

    @property
    def settled(self) -> bool:
        """Everything accepted was settled and the service holds every delivered scan."""
        rejected = sum(self.service_rejected.values())
        return (
            self.still_queued == 0
            and self.delivered + rejected == self.accepted
            and self.service_events == self.delivered - self.service_duplicates
        )

    @property
    def verdict(self) -> str:
        """``ok`` (every accepted scan delivered), ``platform_refused`` (the rest refused by
        the platform for its own reasons), ``acked_then_refused`` (an ACKed scan refused for
        a reason the agent knew) or ``incomplete`` (not settled, or not balanced)."""
        if not self.settled:
            return "incomplete"
        if self.acked_then_refused:
            return "acked_then_refused"
        if self.service_rejected:
            return "platform_refused"
        return "ok"

    @property
    def ok(self) -> bool:
        """The demo succeeded (exit 0): settled, and no ACKed scan refused for a known reason."""
        return self.verdict in ("ok", "platform_refused")

    @property
    def exit_status(self) -> int:
        """0 for ``OK`` and ``SETTLED``; 1 (:data:`~scanner_agent.cli.output.EXIT_FAILED`, the
        operation failed) for ``FAILED`` and ``INCOMPLETE``.  Not 3 (ran, but found problems):
        the demo checks the agent's own path on its own inputs, so a broken promise is the
        product failing, as a failed test run is, not a problem found in what the operator
        gave it."""
        return EXIT_OK if self.ok else EXIT_FAILED


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


async def _drain(daemon: Daemon, progress: _Progress, timeout_s: float = 30.0) -> None:
    """Wait until nothing is left to send (or ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = await daemon.queue_stats()
        assert daemon.sync is not None
        progress.show(
            f"syncing: backlog {stats.backlog}  delivered {daemon.sync.stats.delivered}  "
            f"link {daemon.sync.state.value}"
        )
        if stats.backlog == 0:
            return
        await asyncio.sleep(0.05)


def _agent_config(workdir: Path, service: Service, control_socket: str) -> AgentConfig:
    """The demo agent's config: one dock syncing to ``service``, its outbox in ``workdir``."""
    sync_table = service.tables.pop("sync")
    return config_from_dict(
        {
            "device_id": "demo-dock-1",
            "scan": {"action": "ship"},
            "outbox": {"path": str(workdir / "outbox.db"), "min_free_mb": 0},
            "sync": sync_table,
            "control": {"socket": control_socket},
            **service.tables,
        }
    )


async def run_demo(
    count: int = 300,
    *,
    workdir: Path,
    out: TextIO = sys.stderr,
    control_socket: str = "",
    pace_s: float = 0.002,
    bill: bool = False,
    linger_s: float = 0.0,
    protocol: str = "trace-api",
    on_ready: Callable[[Daemon], None] | None = None,
) -> DemoSummary:
    """Run the demo in ``workdir`` and return its summary.

    ``control_socket`` serves the control interface (for the TUI); ``bill``
    puts the scans on a demo bill with an expected list, closed after the
    last scan (always so for ``protocol = "alihealth"``: the platform takes
    closed bills); ``linger_s`` keeps the daemon up that long after the end;
    ``on_ready`` is called with the daemon once it runs (tests).
    """
    if protocol not in DEMO_PROTOCOLS:
        raise ValueError(f"unknown demo protocol {protocol!r}")
    started = time.monotonic()
    sims = simulate(count)
    # Two codes the "platform" does not know (or, for 码上放心, sells twice), to show a
    # service-side rejection.
    unknown = frozenset([s.line for s in sims if s.kind == "cn20"][3:5])
    bill = bill or protocol == "alihealth"
    with contextlib.ExitStack() as stack:
        service = start_service(protocol, workdir, unknown, stack)
        cfg = _agent_config(workdir, service, control_socket)
        source = TcpSource("tcp:demo-scanner", "127.0.0.1", 0, ack=True)
        daemon = Daemon(cfg, sources=[(source, "ship", "")])
        task = asyncio.create_task(daemon.run())
        ready = asyncio.create_task(daemon.wait_ready())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            await task  # raises the start-up error
        if on_ready is not None:
            on_ready(daemon)
        assert source.bound is not None
        out.write(
            f"{service.name} on {service.url}, agent listening on "
            f"{source.bound[0]}:{source.bound[1]}, outbox {cfg.outbox.path}\n"
        )
        progress = _Progress(out, count)
        numbers: list[str] = []
        if bill:
            numbers.append(await open_demo_bill(daemon, sims, alihealth=protocol == "alihealth"))
        await _scanner(source.bound[1], [s.line for s in sims], progress, daemon, pace_s)
        if bill:
            assert daemon.desk is not None
            await daemon.desk.close()
        await _drain(daemon, progress)
        if protocol == "alihealth":
            # Two boxes of the delivered bill sold again: the platform refuses that bill.
            resale = await _resell(
                daemon, numbers[0], sorted(unknown), source.bound[1], progress, pace_s
            )
            numbers.append(resale)
            await _drain(daemon, progress)
            await wait_for_status(daemon, numbers)
        summary = await _summarise(daemon, service, count, numbers, protocol)
        progress.show(
            f"done: delivered {summary.delivered}, backlog {summary.still_queued}", final=True
        )
        await asyncio.sleep(linger_s)
        daemon.request_stop()
        await task
    summary.seconds = round(time.monotonic() - started, 2)
    return summary


async def _resell(
    daemon: Daemon, sold: str, codes: list[str], port: int, progress: _Progress, pace_s: float
) -> str:
    """Open a sales bill of ``codes`` (already sold on bill ``sold``), scan them, close it;
    its number."""
    assert daemon.desk is not None
    resale = sold + "-R"
    await daemon.desk.open(resale, 201, to_party="demo-customer-2")
    await _scanner(port, codes, progress, daemon, pace_s)
    await daemon.desk.close(resale)
    return resale


async def _summarise(
    daemon: Daemon, service: Service, count: int, numbers: list[str], protocol: str
) -> DemoSummary:
    """What the demo did, read from the daemon, its outbox and the service."""
    stats = await daemon.queue_stats()
    assert daemon.thread is not None
    assert daemon.intake is not None
    outbox = daemon.thread.outbox
    settled = await daemon.thread.call(outbox.rows, limit=10 * count)
    rejected = [r for r in settled if r.result == "rejected"]
    known = await daemon.thread.call(_acked_then_refused, outbox, rejected, daemon.admission)
    return DemoSummary(
        scanned=daemon.intake.stats.scanned,
        accepted=daemon.intake.stats.accepted,
        refused=dict(sorted(daemon.intake.stats.refused.items())),
        delivered=stats.counts.get(RowState.DELIVERED, 0),
        service_duplicates=sum(1 for r in settled if r.result == "duplicate"),
        service_rejected=dict(Counter(r.reason or "" for r in rejected)),
        acked_then_refused=known,
        still_queued=stats.backlog,
        service_events=service.held(),
        protocol=protocol,
        service=service.name,
        bills=await bill_lines(daemon, numbers, service.bills()) if protocol == "alihealth" else [],
    )


def _acked_then_refused(
    outbox: Outbox, rejected: list[OutboxRow], admission: Admission
) -> dict[str, int]:
    """Outbox thread: the refused rows the agent could have NAKed, by reason.

    A row counts when the sink's admission rule refuses it (its scheme, or its
    bill as opened: a default bill counts as none) or the agent's own parser
    refuses its raw frame: both were known when the scan was ACKed.
    """
    book = BillBook(outbox)
    bills: dict[str, str | None] = {}
    out: Counter[str] = Counter()
    for row in rejected:
        if row.bill not in bills:
            try:
                bill = book.get(row.bill)
                opened = bill if bill.type is not None else None
            except BillError:
                opened = None
            bills[row.bill] = admission.bill_problem(row.bill, opened)
        why = admission.refusal(row.scheme, bills[row.bill])
        if why is None and not parse_scan(row.raw).valid:
            why = f"the agent's parser refuses it: {parse_scan(row.raw).reason}"
        if why is not None:
            out[row.reason or why] += 1
    return dict(out)


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
    held = {"alihealth": "trace codes on its bills", "epcis": "events"}.get(s.protocol, "events")
    lines += [
        f"  synced to          {s.service or s.protocol} ({s.protocol})",
        f"  delivered          {s.delivered}  (service already had {s.service_duplicates} of them)",
        f"  rejected by service {sum(s.service_rejected.values())}"
        + ("" if s.protocol == "trace-api" else "  (the platform's reason, or the sink's)"),
    ]
    lines += [f"    {n:>4}  {reason}" for reason, n in s.service_rejected.items()]
    if s.acked_then_refused:
        lines.append("  ACKed, then refused for a reason the agent knew at scan time")
        lines += [f"    {n:>4}  {reason}" for reason, n in s.acked_then_refused.items()]
    if s.bills:
        lines.append("  bills (bill log)")
        lines += [f"    {line}" for line in s.bills]
    lines += [
        f"  still queued       {s.still_queued}",
        f"  service holds      {s.service_events} {held}",
        f"  time               {s.seconds} s",
        f"  result             {verdict_line(s)}",
    ]
    return "\n".join(lines)


def verdict_line(s: DemoSummary) -> str:
    """The verdict in words: what happened to the accepted scans, and whether that was fine."""
    refused = sum(s.service_rejected.values())
    if s.verdict == "ok":
        return f"OK: all {s.accepted} accepted scans were delivered"
    if s.verdict == "platform_refused":
        return (
            f"SETTLED: {s.delivered} of {s.accepted} accepted scans delivered, {refused} "
            "refused by the platform for its own reasons (above), none of them known at "
            "scan time"
        )
    if s.verdict == "acked_then_refused":
        known = sum(s.acked_then_refused.values())
        return (
            f"FAILED: {known} scans were ACKed, then refused for a reason the agent knew "
            "at scan time (above): they should have been NAKed at the scanner"
        )
    return (
        f"INCOMPLETE: {s.still_queued} still queued; {s.delivered} delivered and {refused} "
        f"refused of {s.accepted} accepted, the service holding {s.service_events}"
    )


def _run_plain(count: int, workdir: Path, protocol: str = "trace-api") -> DemoSummary:
    return asyncio.run(run_demo(count, workdir=workdir, protocol=protocol))


def _tui_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("textual") is not None


def _run_with_tui(count: int, workdir: Path, protocol: str = "trace-api") -> DemoSummary:
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
                    protocol=protocol,
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


def demo(
    count: int = 300, *, keep: str | None = None, live: bool = False, protocol: str = "trace-api"
) -> DemoSummary:
    """The demo of ``scanner-agent demo``: ``count`` scans, in ``keep`` (else a temporary
    directory), shown in the TUI while it runs when ``live`` and the TUI is installed."""
    run = _run_with_tui if live and _tui_available() else _run_plain
    if keep:
        workdir = Path(keep)
        workdir.mkdir(parents=True, exist_ok=True)
        summary = run(count, workdir, protocol)
        print(f"the outbox and the service's files are kept in {workdir}", file=sys.stderr)
        return summary
    with tempfile.TemporaryDirectory(prefix="scanner-agent-demo-") as tmp:
        summary = run(count, Path(tmp), protocol)
    # The start line named the outbox; whoever goes to look must learn it is gone, and why.
    print(
        f"{tmp}: deleted, with the outbox and the service's files (--keep DIR keeps them)",
        file=sys.stderr,
    )
    return summary
