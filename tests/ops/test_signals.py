"""A real daemon process: SIGHUP reloads, SIGTERM while scans stream in stops cleanly."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from drivers.tcp_protocol import parse_reply
from scanner_agent.traceserver import TraceServerThread
from tests.support.agent import TOKEN
from tests.support.net import free_port, listening
from tests.support.polling import wait_for


def _config(path: Path, *, port: int, url: str, token: Path, level: str) -> None:
    path.write_text(
        f"""
device_id = "signal-dock"
log_level = "{level}"
[outbox]
path = "{path.parent / "outbox.db"}"
min_free_mb = 0
[sync]
url = "{url}"
token_file = "{token}"
idle_poll_s = 0.05
batch_size = 50
[[source]]
type = "tcp"
listen = "127.0.0.1:{port}"
ack = true
"""
    )


def _stream(port: int, acked: set[str], stop: threading.Event) -> None:
    """Send bursts of unique codes and record every ACK until the daemon goes away."""
    buf = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for burst in range(100_000):
            if stop.is_set():
                return
            codes = [f"8{burst:09d}{i:010d}" for i in range(10)]
            try:
                sock.sendall(b"".join(c.encode() + b"\r\n" for c in codes))
                want = len(codes)
                while want:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        if line.startswith(b"ACK "):
                            acked.add(parse_reply(line + b"\n").detail)
                        want -= 1
            except OSError:
                return


def test_sighup_reloads_and_sigterm_mid_stream_exits_0_with_every_ack_committed(
    tmp_path: Path, token_file: Path
) -> None:
    port = free_port()
    config = tmp_path / "agent.toml"
    log = tmp_path / "daemon.log"
    with TraceServerThread(tmp_path / "service.db", TOKEN) as server:
        _config(config, port=port, url=server.url, token=token_file, level="warning")
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "scanner_agent", "run", "--config", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        try:
            wait_for(lambda: listening(port) or proc.poll() is not None, what="the TCP source")
            assert proc.poll() is None, log.read_text()

            # SIGHUP: the new log level applies without a restart.
            _config(config, port=port, url=server.url, token=token_file, level="info")
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "reload: applied log_level" in log.read_text(), what="the reload")

            acked: set[str] = set()
            stop = threading.Event()
            scanner = threading.Thread(target=_stream, args=(port, acked, stop))
            scanner.start()
            wait_for(lambda: len(acked) >= 300, what="300 ACKs")
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            stop.set()
            scanner.join(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert code == 0, log.read_text()[-2000:]
    assert any(line["msg"] == "scanner-agent stopped" for line in lines)
    # No /run/scanner-agent outside systemd's RuntimeDirectory=; nothing else may log an error.
    known = ("control interface off",)
    errors = [line["msg"] for line in lines if line["level"] == "error"]
    assert not [m for m in errors if not m.startswith(known)], errors

    db = sqlite3.connect(tmp_path / "outbox.db")
    try:
        codes = {row[0] for row in db.execute("SELECT code FROM scans")}
        orphans = db.execute(
            "SELECT COUNT(*) FROM scans WHERE state = 'in_flight' AND "
            "(batch_id IS NULL OR batch_id NOT IN (SELECT batch_id FROM batches))"
        ).fetchone()[0]
        half = db.execute(
            "SELECT b.batch_id FROM batches b WHERE b.events != "
            "(SELECT COUNT(*) FROM scans s WHERE s.batch_id = b.batch_id AND s.state = 'in_flight')"
        ).fetchall()
    finally:
        db.close()
    missing = acked - codes
    assert not missing, f"{len(missing)} ACKed scans not committed, e.g. {sorted(missing)[:3]}"
    assert orphans == 0, "rows in flight without a batch"
    assert half == [], "a batch left half settled"
