"""Kill -9 harness: a real daemon process, SIGKILLed at random moments, restarted.

Used by ``tests/outbox/test_crash.py`` (20 cycles) and ``bench/crash.py``
(more).  Each cycle starts ``scanner-agent run`` as a subprocess with a TCP
source (``ack = true``) and a live sync target, streams unique codes at it
while recording which ones were ACKed, and kills it with SIGKILL after a
random delay: mid-commit, mid-sync, mid-ACK, wherever it happens to be.  A
final run drains the outbox.  The promise checked: every ACKed code is held
by the trace service exactly once, and the outbox has nothing left over.
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from drivers.tcp_protocol import parse_reply
from scanner_agent.outbox import Outbox
from scanner_agent.traceserver import TraceServerThread
from tests.support.net import free_port
from tests.support.polling import wait_for

TOKEN = "crash-token"


def write_config(path: Path, *, port: int, outbox: Path, url: str, token_file: Path) -> None:
    path.write_text(
        f"""
device_id = "crash-dock"
log_level = "warning"
[outbox]
path = "{outbox}"
min_free_mb = 0
[sync]
url = "{url}"
token_file = "{token_file}"
idle_poll_s = 0.05
backoff_initial_s = 0.02
backoff_max_s = 0.2
lease_s = 1.0
batch_size = 200
[[source]]
type = "tcp"
listen = "127.0.0.1:{port}"
ack = true
"""
    )


@dataclass
class CrashReport:
    cycles: int = 0
    sent: int = 0
    acked: set[str] = field(default_factory=set)
    kills_before_first_ack: int = 0


def _wait_listening(port: int, proc: subprocess.Popen[bytes], deadline_s: float = 30.0) -> None:
    def listening() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_for(listening, deadline_s, "the daemon to listen")


def _scanner(
    port: int, codes: list[str], acked: set[str], stop: threading.Event, first_ack: threading.Event
) -> int:
    """Send codes in small bursts and record every ACK, until the daemon dies."""
    sent = 0
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return 0
    buf = b""
    with sock:
        sock.settimeout(5)
        try:
            for i in range(0, len(codes), 20):
                if stop.is_set():
                    break
                burst = codes[i : i + 20]
                sock.sendall(b"".join(c.encode() + b"\r\n" for c in burst))
                sent += len(burst)
                want = len(burst)
                while want:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return sent
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        if line.startswith(b"ACK "):
                            acked.add(parse_reply(line + b"\n").detail)
                            first_ack.set()
                        want -= 1
        except OSError:
            pass
    return sent


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "scanner_agent", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def run_crash_cycles(
    workdir: Path, cycles: int, *, seed: int = 1234
) -> tuple[CrashReport, TraceServerThread]:
    """Run the kill -9 cycles; returns the report and the (still running) service."""
    rng = random.Random(seed)
    port = free_port()
    token_file = workdir / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    outbox = workdir / "outbox.db"
    server = TraceServerThread(workdir / "service.db", TOKEN).start()
    config = workdir / "agent.toml"
    write_config(config, port=port, outbox=outbox, url=server.url, token_file=token_file)
    log = workdir / "daemon.log"
    report = CrashReport()
    try:
        for cycle in range(cycles):
            proc = _start(config, log)
            try:
                _wait_listening(port, proc)
                codes = [f"8{cycle:03d}{i:016d}" for i in range(5000)]
                stop = threading.Event()
                first_ack = threading.Event()
                before = len(report.acked)
                result: list[int] = []
                t = threading.Thread(
                    target=lambda c=codes, s=stop, f=first_ack, r=result: r.append(
                        _scanner(port, c, report.acked, s, f)
                    )
                )
                t.start()
                if cycle % 4 == 3:
                    # Some kills land early: during start-up, before or at the first commit.
                    time.sleep(rng.uniform(0.0, 0.05))
                else:
                    # Most land mid-stream, at a random moment after scans are being ACKed,
                    # however slow the machine is to start the daemon.
                    first_ack.wait(timeout=60)
                    time.sleep(rng.uniform(0.0, 0.4))
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                stop.set()
                t.join(timeout=30)
                report.sent += result[0] if result else 0
                if len(report.acked) == before:
                    report.kills_before_first_ack += 1
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            report.cycles += 1
        # Final run: let it drain, then stop it cleanly.
        proc = _start(config, log)
        try:
            _wait_listening(port, proc)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                held = {e["code"] for e in _all_events(server)}
                if report.acked <= held and _backlog(outbox) == 0:
                    break
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    except BaseException:
        server.stop()
        raise
    return report, server


def _all_events(server: TraceServerThread) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    after = 0
    while True:
        page, cursor = server.store.events_after(after, 10_000)
        if not page or cursor is None:
            return events
        events.extend(page)
        after = cursor


def _backlog(path: Path) -> int:
    if not path.exists():
        return -1
    box = Outbox.open(path)
    try:
        return box.stats().backlog
    finally:
        box.close()


def check(report: CrashReport, server: TraceServerThread, outbox: Path) -> dict[str, int]:
    """Verify the promise; returns figures for the report."""
    events = _all_events(server)
    by_code: dict[str, int] = {}
    for e in events:
        by_code[e["code"]] = by_code.get(e["code"], 0) + 1
    ids = [e["event_id"] for e in events]
    missing = sorted(c for c in report.acked if by_code.get(c, 0) == 0)
    twice = sorted(c for c, n in by_code.items() if n > 1)
    assert not missing, f"{len(missing)} ACKed codes never reached the service, e.g. {missing[:3]}"
    assert not twice, f"{len(twice)} codes held more than once, e.g. {twice[:3]}"
    assert len(ids) == len(set(ids))
    box = Outbox.open(outbox)
    try:
        stats = box.stats()
        rows = {r.code: r for r in box.rows(limit=10**7)}
    finally:
        box.close()
    assert stats.backlog == 0, stats
    # Everything the service holds came from a committed outbox row with the same event id.
    for e in events:
        row = rows.get(e["code"])
        assert row is not None, e
        assert row.event_id == e["event_id"], e
        assert row.state == "delivered", row
    return {
        "cycles": report.cycles,
        "sent": report.sent,
        "acked": len(report.acked),
        "service_events": len(events),
        "committed_not_acked": len(events) - len(report.acked),
        "kills_before_first_ack": report.kills_before_first_ack,
    }
