"""What the CLI says, and the status it exits with, found wrong from outside and fixed.

Each test runs the real console script (a subprocess, or ``cli.main`` with the
output captured) against real outbox files, images, profiles and sysfs trees.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scanner_agent.cli import main
from scanner_agent.cli.output import EXIT_CODES
from scanner_agent.outbox import NewScan, Outbox, uuid7
from tests.everystate import build

AGENT = [sys.executable, "-m", "scanner_agent"]
ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )


def scans(n: int, *, bill: str = "B") -> list[NewScan]:
    return [
        NewScan(
            uuid7(), f"8{i:019d}", "cn20", "r", None, "ship", bill, "d", "s",
            "2026-11-23T00:00:00+00:00",
        )
        for i in range(1, n + 1)
    ]  # fmt: skip


# -- exit status: 0 success, 1 failed, 2 usage or configuration, 3 found problems ----------


def test_exit_0_when_the_command_did_what_was_asked() -> None:
    proc = run("parse", "81234560000000011234")
    assert proc.returncode == 0, proc.stderr


def test_exit_1_when_the_operation_failed(tmp_path: Path) -> None:
    # No agent answers on the socket: the command is right, the operation failed.
    proc = run("status", "--socket", str(tmp_path / "nobody.sock"))
    assert proc.returncode == 1, proc.stderr
    assert "scanner-agent: error:" in proc.stderr
    assert proc.stdout == ""
    # An outbox file of another schema version: it exists, it cannot be read.
    path = tmp_path / "o.db"
    with Outbox.open(path) as box:
        box.enqueue_many(scans(1))
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM _migrations WHERE version = (SELECT MAX(version) FROM _migrations)")
    db.close()
    proc = run("queue", "stats", "--outbox", str(path))
    assert proc.returncode == 1, proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["queue", "stats", "--outbox", "{tmp}/none.db"],  # a file named that does not exist
        ["queue", "ls", "--limit", "many"],  # argparse
        ["queue", "ls", "--limit", "-1"],
        ["no-such-command"],
        ["profiles", "show", "no-such-scanner"],
        ["run", "--config", "{tmp}/bad.toml"],  # an invalid config
        ["check-config", "--config", "{tmp}/bad.toml"],
        ["decode", "{tmp}/no-such-image.png"],
        ["queue", "export", "--outbox", "{tmp}/o.db", "--json", "--format", "csv"],
    ],
)
def test_exit_2_on_a_usage_or_configuration_error(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "bad.toml").write_text('[[source]]\ntype = "tcp"\nlisten = "x:1"\nakc = 1\n')
    with Outbox.open(tmp_path / "o.db") as box:
        box.enqueue_many(scans(1))
    proc = run(*(a.format(tmp=tmp_path) for a in args))
    assert proc.returncode == 2, (args, proc.stderr)
    assert proc.stderr.strip()
    assert not (tmp_path / "none.db").exists()


def test_exit_3_when_parse_finds_an_invalid_code() -> None:
    proc = run("parse", "81234560000000011234", "6901234567892")
    assert proc.returncode == 3
    first, second = (json.loads(x) for x in proc.stdout.splitlines())
    assert (first["valid"], second["valid"]) == (True, False)  # every code still reported
    assert run("parse", stdin="81234560000000011234\nhello\n").returncode == 3


def test_exit_3_when_doctor_finds_a_failure(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[outbox]\npath = "{tmp_path / "o.db"}"\n'
        f'[sync]\nurl = "http://127.0.0.1:9"\ntoken_file = "{tmp_path / "missing-token"}"\n'
    )
    proc = run("doctor", "-c", str(config), "--json")
    assert proc.returncode == 3, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    assert any(c["status"] == "fail" for c in report["checks"])


def test_exit_3_when_queue_export_finds_damaged_rows(tmp_path: Path) -> None:
    every = build(tmp_path / "outbox.db")
    proc = run("queue", "export", "--outbox", str(every.path))
    assert proc.returncode == 3
    assert "1 damaged row not exported" in proc.stderr
    assert len(proc.stdout.splitlines()) == sum(every.counts.values()) - 1


def test_exit_3_when_a_profile_is_invalid_or_the_udev_rules_are_stale(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text(
        '[profile]\nvendor = "A"\nmodel = "B"\ninterfaces = ["rs232"]\n[serial]\nbaudrate = 1234\n'
    )
    proc = run("profiles", "validate", "--dir", str(tmp_path), "--json")
    assert proc.returncode == 3
    report = json.loads(proc.stdout)
    assert report["valid"] == report["profiles"] - 1
    assert any("broken.toml" in e for e in report["errors"])
    stale = tmp_path / "rules"
    stale.write_text("# old\n")
    proc = run("udev-rules", "--check", str(stale))
    assert proc.returncode == 3
    assert "out of date" in proc.stderr


def test_exit_codes_are_in_help_and_the_readme() -> None:
    helps = [run("--help").stdout, run("queue", "ls", "--help").stdout]
    helps.append(run("bill", "show", "--help").stdout)
    for text in helps:
        assert "exit status:" in text, text
        for code, meaning in EXIT_CODES.items():
            assert re.search(rf"^\s+{code}\s+{re.escape(meaning[:30])}", text, re.M), text
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Exit status", 1)[1].split("\n#", 1)[0]
    for code in EXIT_CODES:
        assert re.search(rf"^\| `{code}` \|", section, re.M), f"exit status {code} not in README"


# -- queue ls, queue retry, empty lists ---------------------------------------------------


def test_queue_ls_says_how_many_rows_it_left_out(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox.open(path) as box:
        box.enqueue_many(scans(130))
    proc = run("queue", "ls", "--outbox", str(path))
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["SEQ", "STATE", "SCHEME", "CODE", "BILL", "SCANNED", "AT", "REASON"]
    assert len(lines) == 1 + 100  # the default limit
    assert "showing the first 100 rows of 130: 30 left out (--limit N shows more)" in proc.stderr
    # JSON stays pure on stdout; the note is on stderr as well.
    proc = run("queue", "ls", "--outbox", str(path), "--json", "--limit", "7")
    assert [json.loads(x)["seq"] for x in proc.stdout.splitlines()] == list(range(1, 8))
    assert "123 left out" in proc.stderr
    # Everything shown: no note.
    proc = run("queue", "ls", "--outbox", str(path), "--limit", "130")
    assert proc.stderr == ""
    assert len(proc.stdout.splitlines()) == 131
    # --limit 0: only the count, and no claim that there are no rows.
    proc = run("queue", "ls", "--outbox", str(path), "--limit", "0")
    assert proc.stdout == ""
    assert "130 left out" in proc.stderr
    # The limit is documented.
    assert "list at most N rows" in run("queue", "ls", "--help").stdout


def test_queue_ls_with_nothing_to_list_says_so(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    Outbox.open(path).close()
    assert run("queue", "ls", "--outbox", str(path)).stdout == "no rows in the outbox\n"
    proc = run("queue", "ls", "--outbox", str(path), "--state", "rejected")
    assert proc.stdout == "no rows match\n"
    proc = run("queue", "ls", "--outbox", str(path), "--json")
    assert (proc.returncode, proc.stdout) == (0, "")


def test_queue_retry_agrees_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox.open(path) as box:
        box.enqueue_many(scans(3))
        batch = box.lease(10)
        assert batch is not None
        box.dead_letter_batch(batch.batch_id, "400: malformed")
        first = batch.events[0].seq
    one = run("queue", "retry", "--outbox", str(path), "--seq", str(first))
    assert one.stdout == "1 row back to pending\n"
    rest = run("queue", "retry", "--outbox", str(path))
    assert rest.stdout == "2 rows back to pending\n"
    none = run("queue", "retry", "--outbox", str(path))
    assert none.stdout == "no rejected rows to retry\n"


def test_offline_bill_lists_with_nothing_to_list_say_so(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    Outbox.open(path).close()
    proc = run("bill", "failed", "--outbox", str(path))
    assert proc.stdout.startswith("no bills failed on the trace platform")
    assert run("bill", "failed", "--outbox", str(path), "--json").stdout == ""
    with Outbox.open(path) as box:
        box.enqueue_many(scans(1, bill="dock-ship"))
    proc = run("bill", "history", "dock-ship", "--outbox", str(path))
    assert "no history" in proc.stdout


# -- decode -----------------------------------------------------------------------


def test_decode_reads_subfolders_and_reports_images_with_no_code(tmp_path: Path) -> None:
    pytest.importorskip("zxingcpp")
    import cv2
    import numpy as np

    from tests.camera.synth import Code, symbol

    def code_image(path: Path, text: str) -> None:
        img = symbol(Code("cn20", text, text), 3)
        canvas = np.full((img.shape[0] + 80, img.shape[1] + 80), 255, dtype=np.uint8)
        canvas[40 : 40 + img.shape[0], 40 : 40 + img.shape[1]] = img
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), canvas)

    photos = tmp_path / "photos"
    code_image(photos / "a.png", "81234560000000011234")
    code_image(photos / "dock-3" / "monday" / "b.png", "81234560000000022345")
    cv2.imwrite(str(photos / "dock-3" / "blank.png"), np.full((120, 200), 255, dtype=np.uint8))
    (photos / "notes.txt").write_text("not an image")

    proc = run("decode", str(photos))
    # A photo with no code is named on stderr, and a script sees it too: like zbarimg, the
    # status says some file gave no code (ran, but found problems), the codes read are all out.
    assert proc.returncode == 3, proc.stderr
    found = {
        Path(json.loads(x)["file"]).name: json.loads(x)["text"] for x in proc.stdout.splitlines()
    }
    assert found == {"a.png": "81234560000000011234", "b.png": "81234560000000022345"}
    assert f"{photos / 'dock-3' / 'blank.png'}: no code found (1 frame)" in proc.stderr
    assert "decoded 3 files: 2 codes; 1 file with no code" in proc.stderr

    flat = run("decode", str(photos), "--no-recursive", "--json")
    assert [Path(json.loads(x)["file"]).name for x in flat.stdout.splitlines()] == ["a.png"]
    assert flat.returncode == 0  # every file read gave a code
    assert "decoded 1 file: 1 code" in flat.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run("decode", str(empty))
    assert proc.returncode == 3  # nothing read is never a quiet success
    assert proc.stdout == ""
    assert f"{empty}: no code found (no image read)" in proc.stderr


def test_decode_does_not_follow_a_folder_link_loop(tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    proc = run("decode", str(tmp_path / "a"))
    assert proc.returncode == 3
    assert "no image read" in proc.stderr


# -- profiles show -------------------------------------------------------------------------


def test_profiles_show_prints_usb_ids_in_hex_like_lsusb(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["profiles", "show", "newland-hr22"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^  1eab:1a03  keyboard$", text, re.M), text
    assert re.search(r"^  1eab:1a10  hid-pos$", text, re.M), text
    assert "7851" not in text
    assert "6672" not in text
    assert main(["profiles", "show", "newland-hr22", "--json"]) == 0
    ids = json.loads(capsys.readouterr().out)["usb_ids"]
    assert {"mode": "hid-pos", "vid": 0x1EAB, "pid": 0x1A10, "usb_id": "1eab:1a10"} in ids
    # The same text as `devices` and the udev rules give the same scanner.
    rules = subprocess.run(
        [*AGENT, "udev-rules"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert 'ATTRS{idVendor}=="1eab", ATTRS{idProduct}=="1a10"' in rules


# -- make demo ------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_first_make_demo_says_what_it_installs_before_pip_runs(tmp_path: Path) -> None:
    venv = tmp_path / "venv"  # not there yet: a fresh machine

    def dry_run() -> str:
        return subprocess.run(
            ["make", "-n", "demo", f"VENV={venv}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

    out = dry_run()
    lines = out.splitlines()
    pip = next(i for i, line in enumerate(lines) if "pip install" in line)
    said = "\n".join(lines[:pip])
    assert "installing scanner-agent" in said, out
    assert re.search(r"about \d+.*minutes?", said), out
    # Once installed, the demo starts without the message.
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / ".installed").touch()
    again = dry_run()
    assert "pip install" not in again
    assert "minutes" not in again


# -- counted nouns -----------------------------------------------------------------------


def test_counts_agree_with_their_number_in_check_config_doctor_and_a_bills_history(
    tmp_path: Path,
) -> None:
    from scanner_agent.bills import BillBook

    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "dock-1"\n[outbox]\npath = "{tmp_path / "outbox.db"}"\nmin_free_mb = 0\n'
        f'[sync]\nenabled = false\n[control]\nsocket = "{tmp_path / "control.sock"}"\n'
        '[[source]]\ntype = "tcp"\nlisten = "127.0.0.1:0"\nack = true\n'
    )
    checked = run("check-config", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert ": OK (1 source;" in checked.stdout, checked.stdout
    doctor = run("doctor", "--config", str(config), "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["config"]["detail"].endswith(": 1 source, device dock-1"), checks["config"]

    with Outbox.open(tmp_path / "outbox.db") as box:
        book = BillBook(box)
        book.open("SO-1", 201, device_id="dock-1")
        box.enqueue_many(scans(1, bill="SO-1"))
        book.close("SO-1")
    history = run("bill", "history", "SO-1", "--outbox", str(tmp_path / "outbox.db"))
    assert re.search(r"\sclose\s+1 scan, 1 unit$", history.stdout, re.M), history.stdout


def test_doctors_discovery_line_counts_agree_with_their_number(tmp_path: Path) -> None:
    from tests.drivers.fake_sysfs import HID_POS_DESCRIPTOR, FakeSysfs

    fake = FakeSysfs(tmp_path / "sys")
    usb = fake.usb_device("1-1", 0x1EAB, 0x1A10, serial="HR22-7")
    fake.video(0, fake.interface(usb, 0, "uvcvideo"), name="Dock camera")
    hid = fake.interface(usb, 1, "usbhid")
    fake.hidraw(0, hid, vid=0x1EAB, pid=0x1A10, name="HR22", descriptor=HID_POS_DESCRIPTOR)
    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "dock-1"\n[outbox]\npath = "{tmp_path / "outbox.db"}"\nmin_free_mb = 0\n'
        f'[sync]\nenabled = false\n[control]\nsocket = "{tmp_path / "control.sock"}"\n'
    )
    doctor = run("doctor", "--config", str(config), "--sysfs", str(fake.root), "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    detail = checks["discovery"]["detail"]
    assert ", 1 camera;" in detail, detail
    ports = re.search(r"^(\d+) serial (ports?),", detail)  # this machine's own ports
    assert ports, detail
    assert ports[2] == ("port" if ports[1] == "1" else "ports"), detail
    assert detail.endswith("; 2 with a profile"), detail
