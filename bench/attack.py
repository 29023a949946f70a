"""Attacks on a real daemon's scanner port (issue 16, items 1-4), with a scanner that keeps scanning.

For each attack a fresh daemon is started as a subprocess (``scanner-agent run`` of
the tree under test, a real config on loopback, syncing to the reference trace
service that runs in this process), under a fake systemd: ``NOTIFY_SOCKET`` is a
datagram socket this bench reads and ``WATCHDOG_USEC`` is the shipped unit's 30 s.
While the attack runs, a well-behaved scanner (its own connection from
127.0.0.1) sends a new cn20 code, waits for its ACK, and sends the next one 50 ms
later, reconnecting when its connection fails.  The attackers connect from other
loopback addresses (127.0.0.2 and up), as another device on the LAN would.

Attacks (``ATTACKS``; add one by writing a function of :class:`Ctx`), items 1-4 on the
scanner port, the rest on the control socket and the metrics endpoint:

* ``one-byte-lines``: 16 MiB of one-byte lines on one connection that never reads.
* ``gs1-flood``: eight connections sending worst-case 4 KiB GS1 frames for the whole run.
* ``idle-lockout``: 40 idle connections, then the scanner reconnects (power cycle).
* ``half-open``: 40 connections that vanish without FIN or RST (TCP_REPAIR), then the
  scanner reconnects.
* ``long-line``: 1 MiB lines, each followed by a short frame; counts the replies per line.
* ``control-lookup``: ``lookup`` of 1 MiB and 3 MiB codes on the control socket (item 2).
* ``control-import``: expected lists of 1 MiB (42,500 products) and of 5,000 products,
  imported again and again on the control socket (item 2: "imports capped in input size").
* ``control-clients``: 40 control clients with 15 MiB unterminated lines, JSON nested
  100,000 deep, 8 subscribers that never read (item 8).
* ``metrics-scrapes``: 16 clients scraping the metrics endpoint, giving up after 0.5 s (item 5).

Per attack it records the daemon's peak resident memory (VmHWM), the longest ACK
delay of the scanner (from its first attempt to send a code to that code's ACK,
reconnects included), the longest gap between watchdog pings, and the scans lost
(ACKed but neither in the outbox file nor at the trace service after the daemon
stopped: must be 0).  The last stdout line is one JSON object.

``--tree PATH`` runs the daemon of another checkout (with its own ``make venv``),
e.g. ``git worktree add /work/attack-before 3849b18``: the config uses only keys that
tree knows, and replies of either grammar are understood.  Not part of the test
suite.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner_agent.traceserver import TraceServerThread

HERE = Path(__file__).resolve().parents[1]
TOKEN = "attack-bench-token"
WATCHDOG_USEC = 30_000_000
"""The shipped unit's WatchdogSec=30s: the daemon pings every 5 s; a 30 s gap is a restart."""
CEILING_MB = 300
"""The documented resident-memory ceiling under attack (docs/tcp-protocol.md)."""
SCAN_INTERVAL_S = 0.05
REPLY_TIMEOUT_S = 5.0
PUSHBACK_S = 30.0
"""A daemon that has taken none of a sender's bytes for this long is pushing back."""
WORST_GS1 = ("(01)06901234567892(21)ABC" + "(91)X" * 900)[:4096].encode()
"""A 4 KiB bracketed GS1 frame with repeated AIs: the costliest shape for the parser."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connect(port: int, local: str = "127.0.0.1", timeout: float | None = None) -> socket.socket:
    sock = socket.socket()
    sock.bind((local, 0))
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    return sock


def reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a client that gives up does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def reply_code(line: bytes) -> str | None:
    """The code an ACK line acknowledges, in either grammar; None for anything else."""
    if not line.startswith(b"ACK "):
        return None
    if b"\t" in line:  # version 2: ACK <echo> TAB accepted TAB <code>
        return line.rstrip(b"\n").split(b"\t")[2].decode()
    return line[4:].rstrip(b"\r\n").decode()  # version 1: ACK <code>


# -- the daemon under a fake systemd ---------------------------------------------------


class Notify:
    """The systemd side of sd_notify: a datagram socket, each message stamped on arrival."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode(errors="replace")))

    def ready(self) -> bool:
        return any(m.startswith("READY=1") for _, m in self.messages)

    def longest_gap(self, until: float) -> float:
        """Longest time without a WATCHDOG=1 (from READY to ``until``)."""
        times = [t for t, m in self.messages if m.startswith(("READY=1", "WATCHDOG=1"))]
        times = [t for t in times if t <= until] + [until]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class Daemon:
    """``scanner-agent run`` of a tree, as a subprocess, with its memory sampled."""

    def __init__(self, tree: Path, work: Path, trace_url: str, source_extra: dict[str, Any]):
        self.tree = tree
        self.work = work
        self.port = free_port()
        self.metrics_port = free_port()
        self.control_socket = work / "control.sock"
        self.outbox = work / "outbox.db"
        token = work / "token"
        token.write_text(TOKEN + "\n")
        token.chmod(0o600)
        extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in source_extra.items())
        self.config = work / "agent.toml"
        self.config.write_text(
            f"""device_id = "attack-bench"
log_level = "warning"
[outbox]
path = "{self.outbox}"
min_free_mb = 0
[sync]
url = "{trace_url}"
token_file = "{token}"
idle_poll_s = 0.2
[control]
socket = "{self.control_socket}"
[metrics]
listen = "127.0.0.1:{self.metrics_port}"
[[source]]
type = "tcp"
listen = "127.0.0.1:{self.port}"
ack = true
{extra}"""
        )
        self.notify = Notify(work / "notify.sock")
        self.stderr = (work / "daemon.log").open("wb")
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(self.notify.path),
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
        }
        env.pop("WATCHDOG_PID", None)
        self.proc = subprocess.Popen(
            [str(tree / ".venv" / "bin" / "scanner-agent"), "run", "--config", str(self.config)],
            cwd=tree,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
        )
        self.peak_rss_kb = 0
        self._sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        deadline = time.monotonic() + 60
        while not self.notify.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not start: see {work / 'daemon.log'}")
            time.sleep(0.05)

    def _status(self, key: str) -> int:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def _sample(self) -> None:
        while not self._sampling.is_set() and self.proc.poll() is None:
            self.peak_rss_kb = max(self.peak_rss_kb, self._status("VmRSS"))
            time.sleep(0.05)

    def stop(self) -> float:
        """SIGTERM and wait; returns the longest watchdog gap seen while it ran."""
        self.peak_rss_kb = max(self.peak_rss_kb, self._status("VmHWM"))
        stopping = time.monotonic()
        gap = self.notify.longest_gap(stopping)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._sampling.set()
        self._sampler.join()
        self.notify.close()
        self.stderr.close()
        return gap

    def outbox_codes(self) -> set[str]:
        with contextlib.closing(sqlite3.connect(f"file:{self.outbox}?mode=ro", uri=True)) as db:
            return {row[0] for row in db.execute("SELECT code FROM scans")}


# -- the well-behaved scanner ------------------------------------------------------------


@dataclass
class Scanner:
    """A fixed-mount scanner on 127.0.0.1: one new cn20 code at a time, each until ACKed."""

    port: int
    prefix: int
    delays: list[float] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)
    failures: int = 0
    """Connection attempts refused or reset, and replies that did not come within 5 s."""
    pending_since: float | None = None
    vanished: int = 0
    held: bool = False
    """Connections left half-open by :meth:`power_cycle`."""
    _request: str = ""
    _released: threading.Event = field(default_factory=threading.Event)
    _sock: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = b""
        for i in itertools.count():
            if self._stop.is_set():
                return
            code = f"8{self.prefix:03d}{i:016d}"
            if self._request == "hold":
                self._take_request()
                self.held = True
                while not self._released.wait(0.1) and not self._stop.is_set():
                    pass
                self.held = False
            first = time.monotonic()
            self.pending_since = first
            while not self._stop.is_set():
                if self._request:
                    self._take_request()
                try:
                    if self._sock is None:
                        self._sock = connect(self.port, timeout=REPLY_TIMEOUT_S)
                        buf = b""
                    self._sock.sendall(code.encode() + b"\n")
                    while b"\n" not in buf:
                        chunk = self._sock.recv(4096)
                        if not chunk:
                            raise ConnectionResetError("closed by the daemon")
                        buf += chunk
                    line, buf = buf.split(b"\n", 1)
                    got = reply_code(line + b"\n")
                    if got is None:
                        raise RuntimeError(f"scanner: unexpected reply {line!r}")
                    self.acked.add(got)
                    self.delays.append(time.monotonic() - first)
                    self.pending_since = None
                    break
                except (OSError, TimeoutError):
                    self.failures += 1
                    self._drop()
                    self._stop.wait(0.1)
            self._stop.wait(SCAN_INTERVAL_S)

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            reset(sock)

    def _take_request(self) -> None:
        """Act on a reconnect or power cycle asked for by the bench (in the scanner's thread)."""
        request, self._request = self._request, ""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if request in ("reset", "hold"):
            reset(sock)
        elif request == "vanish":
            self.vanished += _vanish(sock)

    def hold_off(self) -> None:
        """Before the next code, drop the connection and wait for :meth:`release` (switched off)."""
        self._released.clear()
        self._request = "hold"

    def release(self) -> None:
        """Switch the scanner back on: it connects and sends its next code."""
        self._released.set()

    def force_reconnect(self) -> None:
        """Drop the connection before the next code (the scanner restarts): it reconnects."""
        self._request = "reset"

    def power_cycle(self) -> None:
        """Before the next code, lose the connection without a word to the daemon (half-open)."""
        self._request = "vanish"

    def stop(self) -> float:
        """Stop; returns the longest ACK delay, counting a code still unanswered."""
        now = time.monotonic()
        waiting = now - self.pending_since if self.pending_since is not None else 0.0
        self._stop.set()
        if self._thread is not None:
            self._thread.join(REPLY_TIMEOUT_S * 2)
        self._drop()
        return max([*self.delays, waiting], default=0.0)


# -- attacks -----------------------------------------------------------------------------


@dataclass
class Ctx:
    """What an attack gets: the daemon's addresses, the scanner, how long to go on."""

    port: int
    control_socket: Path
    metrics_url: str
    scanner: Scanner
    seconds: float
    _next_local: Iterator[int] = field(default_factory=lambda: itertools.count(2))

    def local(self) -> str:
        """A loopback address of its own for the next attacking device (127.0.0.2, ...)."""
        n = next(self._next_local)
        return f"127.0.{n // 250}.{n % 250 + 2}"

    def until_over(self, started: float) -> None:
        time.sleep(max(0.0, started + self.seconds - time.monotonic()))


def attack_one_byte_lines(ctx: Ctx) -> dict[str, Any]:
    """16 MiB of one-byte lines, never reading a reply (issue 16 item 1).

    Sends until all 16 MiB are taken or the daemon has taken nothing for
    ``PUSHBACK_S`` (it pushes back; a daemon whose event loop is stalled also takes
    nothing for a while, hence the long wait), at most six times the attack's
    length; then holds the connection open, unread, for the rest of the attack.
    """
    started = time.monotonic()
    sock = connect(ctx.port, ctx.local())
    data = memoryview(b"x\n" * (8 << 20))
    sock.setblocking(False)
    sent, progress = 0, started
    while sent < len(data) and time.monotonic() < started + 6 * ctx.seconds:
        try:
            sent += sock.send(data[sent : sent + 65536])
            progress = time.monotonic()
        except BlockingIOError:
            if time.monotonic() - progress > PUSHBACK_S:
                break  # the daemon stopped reading: it pushes back
            time.sleep(0.01)
    pushed_back = sent < len(data)
    ctx.until_over(started)
    reset(sock)
    return {"bytes_sent": sent, "pushed_back": pushed_back}


def attack_gs1_flood(ctx: Ctx) -> dict[str, Any]:
    """Eight connections sending worst-case GS1 frames as fast as taken (issue 16 item 2)."""
    stop = threading.Event()
    counts = {"sent": 0, "replies": 0}
    lock = threading.Lock()

    def flood(sock: socket.socket) -> None:
        burst = (WORST_GS1 + b"\n") * 16
        with contextlib.suppress(OSError):
            while not stop.is_set():
                sock.sendall(burst)
                with lock:
                    counts["sent"] += 16

    def drain(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := sock.recv(1 << 16):
                with lock:
                    counts["replies"] += chunk.count(b"\n")

    started = time.monotonic()
    socks = [connect(ctx.port, ctx.local()) for _ in range(8)]
    threads = [
        threading.Thread(target=f, args=(s,), daemon=True) for s in socks for f in (flood, drain)
    ]
    for t in threads:
        t.start()
    ctx.until_over(started)
    stop.set()
    for s in socks:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
    for t in threads:
        t.join(10)
    for s in socks:
        reset(s)
    return {"frames_sent": counts["sent"], "replies": counts["replies"]}


def attack_idle_lockout(ctx: Ctx) -> dict[str, Any]:
    """40 idle connections, then the scanner is switched on and connects (issue 16 item 3).

    The scanner is off (disconnected) while the attacker opens its connections;
    the attacker keeps 40 open, opening one again at once when the daemon closes
    or refuses it.  Then the scanner is switched on and must get in.
    """
    started = time.monotonic()
    ctx.scanner.hold_off()
    while not ctx.scanner.held:
        time.sleep(0.01)
    stop = threading.Event()
    opened = 0
    live: set[socket.socket] = set()
    lock = threading.Lock()

    def hold() -> None:
        nonlocal opened
        with contextlib.suppress(OSError):
            sock = connect(ctx.port, ctx.local(), timeout=2)
            sock.settimeout(None)  # held until the daemon closes it
            with lock:
                opened += 1
                live.add(sock)
            with contextlib.suppress(OSError):
                sock.recv(1)  # returns when the daemon closes or resets it
            with lock:
                live.discard(sock)
            sock.close()

    def keep() -> None:
        while not stop.is_set():
            hold()
            stop.wait(0.01)

    holders = [threading.Thread(target=keep, daemon=True) for _ in range(40)]
    for t in holders:
        t.start()
    time.sleep(1.0)  # the daemon's slots are all taken
    ctx.scanner.release()
    ctx.until_over(started)
    stop.set()
    with lock:
        for sock in live:  # wakes each holder's recv
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
    for t in holders:
        t.join(5)
    return {"attacker_connections": opened}


def _vanish(sock: socket.socket) -> bool:
    """Close without FIN or RST (TCP_REPAIR needs CAP_NET_ADMIN): a half-open connection."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, 19, 1)  # TCP_REPAIR
    except OSError:
        return False
    sock.close()
    return True


def attack_half_open(ctx: Ctx) -> dict[str, Any]:
    """The scanner loses power 40 times: each time its connection is left half-open (item 3).

    After each new ACK the scanner's socket vanishes without FIN or RST and it
    reconnects, as a Wi-Fi scanner that is power-cycled does; the daemon keeps
    each old connection until it finds it dead.
    """
    started = time.monotonic()
    cycles = 0
    while cycles < 40 and time.monotonic() < started + ctx.seconds:
        acked = len(ctx.scanner.acked)
        while len(ctx.scanner.acked) == acked and time.monotonic() < started + ctx.seconds:
            time.sleep(0.01)
        ctx.scanner.power_cycle()
        cycles += 1
    ctx.until_over(started)
    return {"power_cycles": cycles, "half_open": ctx.scanner.vanished}


def attack_long_line(ctx: Ctx) -> dict[str, Any]:
    """1 MiB lines, each followed by a short frame: replies per long line (issue 16 item 4)."""
    started = time.monotonic()
    per_line: list[int] = []
    line = b"7" * (1 << 20)
    while time.monotonic() < started + ctx.seconds and len(per_line) < 8:
        sock = connect(ctx.port, ctx.local(), timeout=30)
        try:
            sock.sendall(line + b"\nEND\n")
            buf, replies = b"", 0
            while True:
                while b"\n" not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionResetError("closed")
                    buf += chunk
                reply, buf = buf.split(b"\n", 1)
                if reply.startswith(b"NAK END"):
                    break
                replies += 1
            per_line.append(replies)
        except OSError as exc:
            log(f"long-line: {exc}")
            per_line.append(-1)
        finally:
            reset(sock)
    ctx.until_over(started)
    return {"replies_per_long_line": max(per_line, default=0), "long_lines": len(per_line)}


def _unix(path: Path, timeout: float | None = 30) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    return sock


def attack_control_lookup(ctx: Ctx) -> dict[str, Any]:
    """``lookup`` of 1 MiB and 3 MiB codes on the control socket, again and again (item 2)."""
    started = time.monotonic()
    answered, failed = 0, 0
    while time.monotonic() < started + ctx.seconds:
        for size in (1 << 20, 3 << 20):
            request = {"v": 1, "id": 1, "cmd": "lookup", "args": {"code": "8" * size}}
            try:
                with contextlib.closing(_unix(ctx.control_socket)) as sock:
                    sock.sendall(json.dumps(request).encode() + b"\n")
                    if sock.makefile("rb").readline():
                        answered += 1
            except OSError:
                failed += 1
    return {"lookups_answered": answered, "lookups_failed": failed}


def _control_call(path: Path, cmd: str, args: dict[str, Any], timeout: float = 120) -> bool:
    """One request on a connection of its own; whether it was answered ``ok``."""
    request = {"v": 1, "id": 1, "cmd": cmd, "args": args}
    with contextlib.closing(_unix(path, timeout)) as sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        line = sock.makefile("rb").readline()
    return bool(line) and bool(json.loads(line).get("ok"))


def attack_control_import(ctx: Ctx) -> dict[str, Any]:
    """An expected list as large as the control socket's line allows, imported again and again.

    The bill's expected list is replaced in one transaction on the outbox thread, the
    thread that commits every scan.
    """
    rows, size = ["product,count,name"], 19
    while size < (1 << 20) - 4096:
        rows.append(f"{6900000000000 + len(rows)},{len(rows) % 50 + 1},N{len(rows)}")
        size += len(rows[-1]) + 2  # the newline is two bytes in JSON
    # The line's worth, and the most a tree with the row limit takes (MAX_IMPORT_ROWS).
    texts = ["\n".join(rows) + "\n", "\n".join(rows[:5001]) + "\n"]
    started = time.monotonic()
    counts = {"imports_answered": 0, "imports_failed": 0, "products": len(rows) - 1}
    try:
        _control_call(ctx.control_socket, "bill.open", {"number": "ATTACK-1", "type": 101})
    except OSError as exc:
        log(f"control-import: bill.open: {exc}")
    while time.monotonic() < started + ctx.seconds:
        for text in texts:
            try:
                args = {"number": "ATTACK-1", "csv": text, "kind": "expected"}
                ok = _control_call(ctx.control_socket, "bill.import", args)
            except (OSError, ValueError):
                ok = False
            counts["imports_answered" if ok else "imports_failed"] += 1
    return counts


def attack_control_clients(ctx: Ctx) -> dict[str, Any]:
    """40 clients with 15 MiB unterminated lines, 100,000-deep JSON, lazy subscribers (item 8)."""
    started = time.monotonic()
    stop = threading.Event()
    sent = {"bytes": 0}

    def long_line() -> None:
        chunk = b"x" * 65536
        with contextlib.suppress(OSError), contextlib.closing(_unix(ctx.control_socket)) as sock:
            for _ in range(240):  # 15 MiB, never terminated
                if stop.is_set():
                    return
                sock.sendall(chunk)
                sent["bytes"] += len(chunk)
            stop.wait()

    def lazy_subscriber() -> None:
        with contextlib.suppress(OSError), contextlib.closing(_unix(ctx.control_socket)) as sock:
            sock.sendall(b'{"v": 1, "id": 1, "cmd": "subscribe"}\n')
            stop.wait()  # never reads a scan event

    threads = [threading.Thread(target=long_line, daemon=True) for _ in range(40)]
    threads += [threading.Thread(target=lazy_subscriber, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    deep = 0
    with contextlib.suppress(OSError), contextlib.closing(_unix(ctx.control_socket)) as sock:
        sock.sendall(b"[" * 100_000 + b"]" * 100_000 + b"\n")
        deep = len(sock.makefile("rb").readline())
    ctx.until_over(started)
    stop.set()
    for t in threads:
        t.join(10)
    return {"long_line_bytes": sent["bytes"], "deep_json_reply_bytes": deep}


def attack_metrics_scrapes(ctx: Ctx) -> dict[str, Any]:
    """Scrapes of the metrics endpoint from 16 clients that give up after 0.5 s (item 5)."""
    import httpx

    started = time.monotonic()
    counts = {"scrapes": 0, "answered": 0}

    def scrape() -> None:
        with httpx.Client(timeout=0.5) as client:
            while time.monotonic() < started + ctx.seconds:
                counts["scrapes"] += 1
                with contextlib.suppress(httpx.HTTPError):
                    client.get(ctx.metrics_url)
                    counts["answered"] += 1

    threads = [threading.Thread(target=scrape, daemon=True) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts


ATTACKS: dict[str, Callable[[Ctx], dict[str, Any]]] = {
    "one-byte-lines": attack_one_byte_lines,
    "gs1-flood": attack_gs1_flood,
    "idle-lockout": attack_idle_lockout,
    "half-open": attack_half_open,
    "long-line": attack_long_line,
    "control-lookup": attack_control_lookup,
    "control-import": attack_control_import,
    "control-clients": attack_control_clients,
    "metrics-scrapes": attack_metrics_scrapes,
}
"""Each attack, by name; attacks on the control socket or the metrics endpoint are more
entries (:class:`Ctx` has their addresses)."""


# -- one run -------------------------------------------------------------------------------


def run_attack(
    name: str, tree: Path, seconds: float, source_extra: dict[str, Any], prefix: int
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"attack-{name}-"))
    try:
        with TraceServerThread(work / "trace.db", TOKEN) as trace:
            daemon = Daemon(tree, work, trace.url, source_extra)
            scanner = Scanner(daemon.port, prefix)
            try:
                scanner.start()
                time.sleep(2.0)  # the scanner's normal pace before the attack
                ctx = Ctx(
                    daemon.port,
                    daemon.control_socket,
                    f"http://127.0.0.1:{daemon.metrics_port}/metrics",
                    scanner,
                    seconds,
                )
                log(f"{name}: attacking for {seconds:g} s ...")
                figures = ATTACKS[name](ctx)
                time.sleep(3.0)  # and after it
            finally:
                ack_delay = scanner.stop()
                gap = daemon.stop()
            held = daemon.outbox_codes()
            events, delivered = [], set()
            after = 0
            while True:
                events, cursor = trace.store.events_after(after, 10_000)
                if cursor is None:
                    break
                delivered |= {e["code"] for e in events}
                after = cursor
        lost = scanner.acked - held - delivered
        delays = scanner.delays or [0.0]
        result = {
            "peak_rss_mb": round(daemon.peak_rss_kb / 1024, 1),
            "max_ack_delay_ms": round(ack_delay * 1000, 1),
            "p50_ack_delay_ms": round(statistics.median(delays) * 1000, 2),
            "max_watchdog_gap_s": round(gap, 2),
            "acked": len(scanner.acked),
            "scanner_failures": scanner.failures,
            "scans_lost": len(lost),
            **figures,
        }
        log(f"{name}: {json.dumps(result)}")
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=HERE, help="checkout whose daemon to run")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each attack")
    parser.add_argument("--only", nargs="*", choices=sorted(ATTACKS), help="attacks to run")
    parser.add_argument(
        "--unthrottled",
        action="store_true",
        help="turn the per-peer refused-frame rate off (refused_per_s = 1e9): the parse "
        "thread and the in-flight limits alone must hold (needs a tree that knows the key)",
    )
    args = parser.parse_args()
    tree = args.tree.resolve()
    extra: dict[str, Any] = (
        {"refused_per_s": 1e9, "refused_burst": 1 << 30} if args.unthrottled else {}
    )
    commit = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    results = {}
    for i, name in enumerate(args.only or list(ATTACKS)):
        results[name] = run_attack(name, tree, args.seconds, extra, prefix=100 + i)
    summary = {
        "tree": str(tree),
        "commit": commit,
        "seconds": args.seconds,
        "unthrottled": args.unthrottled,
        "ceiling_mb": CEILING_MB,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results.values()),
        "max_ack_delay_ms": max(r["max_ack_delay_ms"] for r in results.values()),
        "max_watchdog_gap_s": max(r["max_watchdog_gap_s"] for r in results.values()),
        "scans_lost": sum(r["scans_lost"] for r in results.values()),
        "attacks": results,
    }
    summary["within_ceiling"] = summary["peak_rss_mb"] <= CEILING_MB
    print(json.dumps(summary))
    return 0 if summary["scans_lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
