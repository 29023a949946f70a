"""The console script, run as a real subprocess."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scanner_agent.outbox import (
    SCHEMA_VERSION,
    EventResult,
    NewScan,
    Outbox,
    OutboxRow,
    uuid7,
)
from tests.support.polling import wait_for

AGENT = [sys.executable, "-m", "scanner_agent"]


def run(
    *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENT, *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_parse_prints_one_json_object_per_code() -> None:
    proc = run("parse", "81234560000000011234", "6901234567892")
    assert proc.returncode == 3  # ran, and found an invalid code (still printed)
    first, second = (json.loads(line) for line in proc.stdout.splitlines())
    assert first["scheme"] == "cn20"
    assert first["valid"] is True
    assert first["product"] == "8123456"
    assert second["valid"] is False
    assert second["reason"] == "a product barcode, not a trace code"
    for key in (
        "raw",
        "scheme",
        "valid",
        "reason",
        "symbology",
        "product",
        "serial",
        "gtin",
        "batch",
        "expiry",
    ):
        assert key in first


def test_parse_reads_lines_from_stdin_keeping_gs_separators() -> None:
    proc = run(
        "parse", stdin="]d2010690123456789217280500104711\x1d21ABC123\n\n81234560000000011234\r\n"
    )
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["scheme"] for r in results] == ["gs1", "cn20"]
    assert results[0]["symbology"] == "]d2"
    assert results[0]["batch"] == "4711"
    assert results[0]["serial"] == "ABC123"


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[[source]]\ntype = "tcp"\nlisten = "127.0.0.1:9100"\nakc = true\n')
    proc = run("run", "--config", str(cfg))
    assert proc.returncode == 2
    assert "source[0].akc: unknown key" in proc.stderr
    assert proc.stdout == ""


def test_queue_commands_read_an_outbox_file(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox.open(path) as box:
        box.enqueue_many(
            [
                NewScan(
                    uuid7(),
                    "81234560000000011234",
                    "cn20",
                    "r",
                    None,
                    "ship",
                    "B",
                    "d",
                    "s",
                    "2026-11-23T00:00:00+00:00",
                )
            ]
        )
    stats = json.loads(run("queue", "stats", "--outbox", str(path), "--json").stdout)
    assert stats["counts"]["pending"] == 1
    assert stats["backlog"] == 1
    rows = [
        json.loads(x)
        for x in run("queue", "ls", "--outbox", str(path), "--json").stdout.splitlines()
    ]
    assert rows[0]["code"] == "81234560000000011234"
    csv_out = run("queue", "export", "--outbox", str(path), "--format", "csv").stdout.splitlines()
    assert csv_out[0].startswith("seq,event_id,code")
    assert len(csv_out) == 2
    missing = run("queue", "stats", "--outbox", str(tmp_path / "none.db"))
    assert missing.returncode == 2
    assert "no such file" in missing.stderr


def _scans(n: int, *, scanned_at: str = "2026-11-23T00:00:00+00:00") -> list[NewScan]:
    """``n`` valid cn20 scans of distinct codes, as the intake would queue them."""
    return [
        NewScan(uuid7(), f"8{i:019d}", "cn20", "r", None, "ship", "B", "d", "s", scanned_at)
        for i in range(1, n + 1)
    ]


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_queue_retry_sends_dead_letters_again(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox.open(path) as box:
        box.enqueue_many(_scans(3))
        batch = box.lease(10)
        assert batch is not None
        assert box.dead_letter_batch(batch.batch_id, "400: malformed") == 3
        first_seq = batch.events[0].seq
    one = run("queue", "retry", "--outbox", str(path), "--seq", str(first_seq), "--json")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout) == {"requeued": 1}
    rest = run("queue", "retry", "--outbox", str(path))
    assert rest.returncode == 0, rest.stderr
    assert rest.stdout == "2 rows back to pending\n"
    none_left = run("queue", "retry", "--outbox", str(path), "--json")
    assert json.loads(none_left.stdout) == {"requeued": 0}
    with Outbox.open(path) as box:
        stats = box.stats()
        assert stats.counts["pending"] == 3
        assert stats.counts["rejected"] == 0
        assert [r.reason for r in box.rows()] == [None, None, None]


def test_queue_export_jsonl_writes_every_row_as_one_json_object(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    scans = _scans(5003)  # more than one page of 5,000 rows
    with Outbox.open(path) as box:
        box.enqueue_many(scans)
    proc = run("queue", "export", "--outbox", str(path), "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["seq"] for r in rows] == list(range(1, 5004))
    assert [r["event_id"] for r in rows] == [s.event_id for s in scans]
    assert set(rows[0]) == {f.name for f in dataclasses.fields(OutboxRow)}
    assert rows[-1]["code"] == scans[-1].code
    assert rows[-1]["state"] == "pending"


def test_queue_stats_gives_the_age_of_the_oldest_pending_scan(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    with Outbox.open(path) as box:
        box.enqueue_many(_scans(2, scanned_at=two_hours_ago.isoformat(timespec="milliseconds")))
    stats = json.loads(run("queue", "stats", "--outbox", str(path), "--json").stdout)
    assert 7200 <= stats["oldest_pending_age_s"] < 7200 + 120
    text = run("queue", "stats", "--outbox", str(path)).stdout
    assert re.search(r"^oldest +\d{4}-\d\d-\d\d \S+ \S+ \(2h [01]m ago\)$", text, re.MULTILINE), (
        text
    )
    with Outbox.open(path) as box:
        batch = box.lease(10)
        assert batch is not None
        box.settle(batch.batch_id, {e.event_id: EventResult("accepted") for e in batch.events})
    stats = json.loads(run("queue", "stats", "--outbox", str(path), "--json").stdout)
    assert stats["oldest_pending_at"] is None
    assert stats["oldest_pending_age_s"] is None
    assert re.search(r"^oldest +-$", run("queue", "stats", "--outbox", str(path)).stdout, re.M)


def test_queue_reads_a_live_outbox_without_changing_it(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox.open(path) as box:
        box.enqueue_many(_scans(5))
        # The daemon's connection stays open: the rows are in its WAL, not yet in the file.
        assert (tmp_path / "o.db-wal").stat().st_size > 0
        before = _files(tmp_path)
        stats = json.loads(run("queue", "stats", "--outbox", str(path), "--json").stdout)
        assert stats["counts"]["pending"] == 5
        listed = run("queue", "ls", "--outbox", str(path), "--json").stdout.splitlines()
        assert len(listed) == 5
        exported = run("queue", "export", "--outbox", str(path)).stdout.splitlines()
        assert [json.loads(x)["seq"] for x in exported] == [1, 2, 3, 4, 5]
        after = _files(tmp_path)
        # The file and its WAL are byte for byte as the daemon left them (the -shm is
        # shared memory that any reader writes to).
        assert after.keys() == before.keys()
        assert after["o.db"] == before["o.db"]
        assert after["o.db-wal"] == before["o.db-wal"]
    with Outbox.open(path) as box:
        assert box.stats().counts["pending"] == 5


def test_queue_read_commands_create_no_file(tmp_path: Path) -> None:
    missing = tmp_path / "state" / "none.db"
    for command in (["stats"], ["ls"], ["export"], ["stats", "--json"]):
        proc = run("queue", *command, "--outbox", str(missing))
        assert proc.returncode == 2
        assert proc.stdout == ""
        assert "no such file" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_queue_read_commands_refuse_an_outbox_of_another_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox.open(path) as box:
        box.enqueue_many(_scans(1))
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM _migrations WHERE version = ?", (SCHEMA_VERSION,))
    db.close()
    before = _files(tmp_path)
    proc = run("queue", "stats", "--outbox", str(path))
    assert proc.returncode == 1  # the file is there but cannot be read: the operation failed
    assert f"older than v{SCHEMA_VERSION}" in proc.stderr
    # Not migrated by a look.  (SQLite adds the empty -wal and -shm any reader of a WAL
    # file without them creates; the database file is what must not change.)
    assert _files(tmp_path)["o.db"] == before["o.db"]


@pytest.mark.skipif(os.environ.get("SCANNER_AGENT_SKIP_DEMO") == "1", reason="demo disabled")
def test_demo_balances_every_accepted_scan(tmp_path: Path) -> None:
    proc = run("demo", "--count", "200", "--json", "--keep", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["ok"] is True
    # Two codes the service does not know: refused for its own reasons, so not "OK".
    assert summary["verdict"] == "platform_refused"
    assert summary["acked_then_refused"] == {}
    assert summary["scanned"] == 200
    assert summary["still_queued"] == 0
    assert summary["accepted"] + sum(summary["refused"].values()) == 200
    assert summary["refused"]["duplicate scan"] > 0
    assert summary["refused"]["a product barcode, not a trace code"] > 0
    assert sum(summary["service_rejected"].values()) == 2
    assert (tmp_path / "outbox.db").exists()


@pytest.mark.skipif(os.environ.get("SCANNER_AGENT_SKIP_DEMO") == "1", reason="demo disabled")
def test_demo_says_where_its_files_went(tmp_path: Path) -> None:
    """The demo names its outbox when it starts; a new user who goes to look finds it gone
    unless told: the note on stderr says it was deleted and how to keep it (or where it is)."""
    proc = run("demo", "--count", "20")
    assert proc.returncode == 0, proc.stderr
    outbox = Path(re.search(r"outbox (\S+)", proc.stderr).group(1))  # type: ignore[union-attr]
    assert not outbox.parent.exists()
    assert f"{outbox.parent}: deleted" in proc.stderr
    assert "--keep DIR" in proc.stderr
    kept = run("demo", "--count", "20", "--keep", str(tmp_path))
    assert kept.returncode == 0, kept.stderr
    assert (tmp_path / "outbox.db").exists()
    assert f"kept in {tmp_path}" in kept.stderr


@pytest.mark.skipif(os.environ.get("SCANNER_AGENT_SKIP_DEMO") == "1", reason="demo disabled")
def test_demo_against_the_alihealth_emulator_uploads_the_closed_bills(tmp_path: Path) -> None:
    proc = run(
        "demo", "--protocol", "alihealth", "--count", "60", "--json", "--keep", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    assert "码上放心 gateway emulator on http://127.0.0.1:" in proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["ok"] is True
    assert summary["verdict"] == "platform_refused"
    assert summary["acked_then_refused"] == {}
    assert summary["protocol"] == "alihealth"
    assert summary["scanned"] == 62  # 60, then two boxes of the first bill sold again
    assert summary["still_queued"] == 0
    assert summary["delivered"] == summary["service_events"] > 0
    # GS1 codes are NAKed at the scanner (码上放心 takes only its own codes), not ACKed.
    assert summary["refused"]["码上放心 takes only 20-digit trace codes"] > 0
    rejected = summary["service_rejected"]
    # What the platform refused afterwards is only what it alone could know: a resale.
    assert list(rejected) == [r for r in rejected if "追溯码已销售出库" in r]
    (refused,) = rejected
    assert rejected[refused] == 2
    uploaded, resale = (line for line in summary["bills"] if ": deal_status" not in line)
    assert " accepted SUCCESS" in uploaded
    assert "order_code=PO-DEMO-" in uploaded
    assert "warehouse_id=WH-DEMO-1" in uploaded
    assert "-R: rejected FAIL 追溯码已销售出库" in resale
    secret = tmp_path / "alihealth.secret"
    assert secret.stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(os.environ.get("SCANNER_AGENT_SKIP_DEMO") == "1", reason="demo disabled")
def test_demo_against_the_epcis_emulator_balances(tmp_path: Path) -> None:
    proc = run("demo", "--protocol", "epcis", "--count", "60", "--json", "--keep", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["ok"] is True
    assert summary["verdict"] == "platform_refused"
    assert summary["acked_then_refused"] == {}
    assert summary["protocol"] == "epcis"
    assert summary["scanned"] == 60
    assert summary["still_queued"] == 0
    assert summary["delivered"] == summary["service_events"] > 0
    rejected = summary["service_rejected"]
    assert sum(rejected.values()) == 2
    assert all("not a product known to this repository" in r for r in rejected)
    assert (tmp_path / "token").stat().st_mode & 0o777 == 0o600


def test_trace_server_command_serves_trace_api_v1_until_sigterm(tmp_path: Path) -> None:
    import signal
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            *AGENT,
            "trace-server",
            "--listen",
            f"127.0.0.1:{port}",
            "--db",
            str(tmp_path / "t.db"),
            "--token",
            "tok",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return bool(httpx.get(url + "/v1/health").json() == {"status": "ok"})
            except httpx.TransportError:
                return False

        wait_for(healthy, 30, "the trace service's health")
        assert httpx.get(url + "/v1/events").status_code == 401
        batch = {
            "batch_id": "b-1",
            "device_id": "dock",
            "sent_at": "2026-11-23T10:00:00+08:00",
            "events": [
                {
                    "event_id": "e-1",
                    "code": "81234560000000011234",
                    "scheme": "cn20",
                    "action": "ship",
                    "bill": "B",
                    "scanned_at": "2026-11-23T10:00:00+08:00",
                    "source": "test",
                }
            ],
        }
        headers = {"Authorization": "Bearer tok", "Idempotency-Key": "b-1"}
        reply = httpx.post(url + "/v1/batches", json=batch, headers=headers).json()
        assert reply["results"] == [{"event_id": "e-1", "status": "accepted", "reason": None}]
        events = httpx.get(url + "/v1/codes/81234560000000011234", headers=headers).json()["events"]
        assert [e["event_id"] for e in events] == ["e-1"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "tok" not in err.replace("token", "")


def test_the_run_command_tunes_the_interpreter_before_the_daemon_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Process-wide settings belong to the process that `scanner-agent run` is,
    # not to Daemon.run, which tests and the demo run inside other programs.
    from scanner_agent import interpreter
    from scanner_agent.cli import main
    from scanner_agent.daemon import Daemon

    calls: list[str] = []

    async def run(self: Daemon, **kwargs: object) -> None:
        calls.append("daemon")

    monkeypatch.setattr(interpreter, "tune_interpreter", lambda: calls.append("tune"))
    monkeypatch.setattr(Daemon, "run", run)
    config = tmp_path / "agent.toml"
    config.write_text(f'[outbox]\npath = "{tmp_path / "outbox.db"}"\n[sync]\nenabled = false\n')
    assert main(["run", "--config", str(config)]) == 0
    assert calls == ["tune", "daemon"]
