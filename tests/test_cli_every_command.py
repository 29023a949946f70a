"""Every ``scanner-agent`` command, run for real, prints output people can read and scripts can trust.

The test walks ``build_parser()``: each command that reports anything must
take ``--json``, and each is run here, as people and as programs would run it,
against real files and a real daemon (the outbox of ``tests/everystate.py``
with a bill in every state, a TCP scanner, the control socket):

* text for people has no Python ``repr`` (``{'`` or ``['``), no ISO time
  (times are local, with the zone shown), and is never empty;
* ``--json`` prints only JSON (one value per line), every time in it ISO 8601
  with an offset, no Unix-time number anywhere;
* the exit status is the documented one.

A command added to the parser and not to :data:`STEPS` fails the coverage
check, so a new command cannot skip these rules.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scanner_agent.cli import build_parser, main
from scanner_agent.config import AgentConfig
from tests.drivers.fake_sysfs import HID_POS_DESCRIPTOR, FakeSysfs
from tests.drivers.tcp_client import BlockingScanner, agent_thread, port_of
from tests.everystate import build
from tests.support.cli import json_problems

NOT_REPORTING = {"run", "trace-server", "tui"}
"""Commands that run until stopped and report nothing when they return."""

DATA = {"parse", "decode", "queue export", "bill export"}
"""Commands whose output is data for programs by default (JSON); notes go to stderr."""

SLOW = {"demo"}
"""Run as a subprocess (it sets up logging and servers of its own)."""

RAW_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
LOCAL_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CST")


def leaf_commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command of the parser, as its words and its parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from leaf_commands(sub, (*prefix, name))
            return
    yield prefix, parser


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def test_every_reporting_command_takes_json() -> None:
    leaves = dict(leaf_commands(build_parser()))
    assert len(leaves) > 30
    missing = [
        " ".join(words)
        for words, parser in leaves.items()
        if " ".join(words) not in NOT_REPORTING and "--json" not in options(parser)
    ]
    assert missing == []


def test_json_problems_finds_epoch_numbers_and_bare_times() -> None:
    assert json_problems({"a": {"last_success_at": 1795422615.2}}) != []
    assert json_problems({"last_scan_at": {"tcp:x": 1795422615.2}}) != []
    assert json_problems({"x": [{"retry": 1795422615}]}) != []
    assert json_problems({"at": "2026-11-23 08:30:01"}) != []
    assert json_problems({"at": "2026-11-23T08:30:01.000+00:00", "n": 12}) == []


class Walk:
    """Runs commands in this process (``main``), records what was covered, checks each output."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.text: set[str] = set()
        self.json: set[str] = set()
        self.commands = {" ".join(w) for w, _ in leaf_commands(build_parser())} - NOT_REPORTING
        self.err = ""
        """The last command's stderr."""

    def command_of(self, argv: list[str]) -> str:
        words = [a for a in argv if not a.startswith("-")]
        for n in (2, 1):
            name = " ".join(words[:n])
            if name in self.commands:
                return name
        raise AssertionError(f"not a command: {argv}")

    def __call__(self, *argv: str, code: int | tuple[int, ...] = 0) -> str:
        args = list(argv)
        name = self.command_of(args)
        as_json = "--json" in args
        if name in SLOW:
            proc = subprocess.run(
                [sys.executable, "-m", "scanner_agent", *args],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            status, out, err = proc.returncode, proc.stdout, proc.stderr
        else:
            status = main(args)
            out, err = self.capsys.readouterr()
        self.err = err
        codes = code if isinstance(code, tuple) else (code,)
        shown = f"scanner-agent {' '.join(args)} exited {status}\nstdout: {out}\nstderr: {err}"
        assert status in codes, shown
        if as_json:
            self.json.add(name)
        else:
            self.text.add(name)
        if as_json:  # one JSON value per line
            for line in out.splitlines():
                assert json_problems(json.loads(line)) == [], shown
        elif name in DATA:  # JSON lines, or one (indented) JSON document
            lines = out.splitlines()
            values = [json.loads(out)] if lines[:1] == ["{"] else [json.loads(x) for x in lines]
            assert all(json_problems(v) == [] for v in values), shown
        if not as_json:
            assert out.strip() or err.strip(), f"silent: {shown}"
            for text in (out, err):
                assert "{'" not in text, shown
                assert "['" not in text, shown
            if name not in DATA:
                assert not RAW_ISO.search(out), f"a time not in local time: {shown}"
        return out


def test_every_command_reports_readably_and_as_json(
    tmp_path: Path,
    make_config: Callable[..., AgentConfig],
    capsys: pytest.CaptureFixture[str],
    shanghai: None,
) -> None:
    every = build(tmp_path / "outbox.db")
    outbox = str(every.path)
    sock = str(tmp_path / "control.sock")
    cfg = make_config(
        sync={"enabled": False},
        control={"socket": sock},
        source=[{"type": "tcp", "listen": "127.0.0.1:0", "ack": True}],
    )
    config = tmp_path / "agent.toml"
    config.write_text(
        f'device_id = "test-dock"\n[outbox]\npath = "{outbox}"\nmin_free_mb = 0\n'
        f'[sync]\nenabled = false\ntoken_file = "{tmp_path / "token"}"\n'
        f'[control]\nsocket = "{sock}"\n'
    )
    expected = tmp_path / "expected.csv"
    expected.write_text("product,count,name\n8000000,3,阿莫西林胶囊\n")
    packs = tmp_path / "packs.csv"
    packs.write_text("product,units,unit_product,name\n8123450,10,8123456,阿莫西林 10盒\n")
    fake = FakeSysfs(tmp_path / "sys")
    usb = fake.usb_device("1-1", 0x1EAB, 0x1A10, serial="HR22-7")
    fake.hidraw(
        0,
        fake.interface(usb, 0, "usbhid"),
        vid=0x1EAB,
        pid=0x1A10,
        name="Newland HR22",
        descriptor=HID_POS_DESCRIPTOR,
    )
    images = tmp_path / "images" / "inner"
    images.mkdir(parents=True)
    camera = importlib.util.find_spec("zxingcpp") is not None  # the [camera] extra
    if camera:
        _write_code_image(images / "pack.png")
    walk = Walk(capsys)
    run = walk

    # -- offline: codes, images, profiles, devices, config, install ---------------------
    run("parse", "81234560000000011234")
    run("parse", "81234560000000011234", "--json")
    if camera:
        run("decode", str(tmp_path / "images"))
        run("decode", str(tmp_path / "images"), "--json")
    else:  # without the camera extra decode cannot run; every other command still must
        walk.commands.discard("decode")
    run("profiles", "list")
    run("profiles", "list", "--json")
    run("profiles", "show", "newland-hr22")
    run("profiles", "show", "newland-hr22", "--json")
    run("profiles", "validate")
    run("profiles", "validate", "--json")
    run("devices", "--sysfs", str(fake.root))
    run("devices", "--sysfs", str(fake.root), "--json")
    run("check-config", "-c", str(config))
    run("check-config", "-c", str(config), "--json")
    rules = tmp_path / "rules"
    run("udev-rules", "-o", str(rules))
    run("udev-rules", "--json")
    run("udev-rules", "--check", str(rules))
    run("udev-rules", "--check", str(rules), "--json")
    root = tmp_path / "root"
    staged = ["--destdir", str(root), "--no-venv"]
    run("install", *staged)
    run("install", *staged, "--json")
    run("uninstall", "--destdir", str(root))
    run("uninstall", "--destdir", str(root), "--json")
    run("doctor", "-c", str(config), "--sysfs", str(fake.root), code=(0, 3))
    run("doctor", "-c", str(config), "--sysfs", str(fake.root), "--json", code=(0, 3))
    run("demo", "--count", "20")
    run("demo", "--count", "20", "--json")

    # -- the outbox file ---------------------------------------------------------------
    q = ["--outbox", outbox]
    run("queue", "stats", *q)
    run("queue", "stats", *q, "--json")
    run("queue", "ls", *q)
    run("queue", "ls", *q, "--json")
    run("queue", "ls", *q, "--state", "rejected", "--limit", "1")
    run("queue", "export", *q, code=3)  # the quarantined row is reported, not exported
    run("queue", "export", *q, "--json", code=3)
    copy = tmp_path / "copy.db"
    shutil.copy(outbox, copy)
    run("queue", "salvage", str(copy), "--dry-run", *q, code=(0, 3))
    run("queue", "salvage", str(copy), "--dry-run", *q, "--json", code=(0, 3))
    run("bill", "history", "SO-EMPTY", *q)
    run("bill", "history", "SO-EMPTY", *q, "--json")
    run("bill", "failed", *q)
    run("bill", "failed", *q, "--json")
    run("bill", "export", "SO-DONE", "--format", "nhsa", *q)
    run("bill", "export", "SO-DONE", "--format", "nhsa", *q, "--json")
    run("bill", "types")
    run("bill", "types", "--json")

    # -- the running agent ---------------------------------------------------------------
    with agent_thread(cfg) as source:
        s = ["--socket", sock]
        scanner = BlockingScanner(port_of(source))
        try:
            codes = [f"8{n:019d}" for n in range(40, 46)]
            scanner.send(*(c.encode() for c in codes))
            assert [scanner.reply().accepted for _ in codes] == [True] * len(codes)
        finally:
            scanner.close()
        run("status", *s)
        run("status", *s, "--json")
        run("lookup", codes[0], *s)
        run("lookup", codes[0], *s, "--json")
        run("bill", "open", "SO-IN", "--type", "102", *s)
        run("bill", "import", str(expected), "--bill", "SO-IN", *s)
        run("bill", "import", str(packs), "--packs", *s, "--json")
        run("bill", "show", "SO-IN", *s)
        run("bill", "close", "SO-IN", *s)
        run("bill", "open", "SO-IN2", "--type", "102", *s, "--json")
        run("bill", "close", "SO-IN2", *s, "--json")
        run("bill", "undo", "SO-OPEN", "-r", "scanned twice", *s)
        run("bill", "undo", "SO-OPEN", "-r", "scanned twice", *s, "--json")
        run("bill", "remove", "SO-OPEN", "--code", codes[2], "-r", "damaged", *s)
        run("bill", "remove", "SO-OPEN", "--code", codes[3], "-r", "damaged", *s, "--json")
        run("bill", "show", "SO-OPEN", *s)
        run("bill", "show", "SO-PART", *s, "--json")
        run("bill", "list", *s)
        run("bill", "list", *s, "--json")
        assert run("bill", "list", "--state", "open", "--limit", "0", *s) == ""
        assert "showing the newest 0 bills; more are left out (--limit N)" in walk.err
        run("bill", "list", "--limit", "100", *s)
        assert walk.err == ""  # every bill shown: no note
        run("bill", "ack", "SO-PART", "-n", "done", *s, code=1)  # no platform failure on it
        run("bill", "ack", "SO-PART", "-n", "done", *s, "--json", code=1)
        run("queue", "retry", *q)
        run("queue", "retry", *q, "--json")

    assert walk.commands - walk.text == set(), "commands never run for people"
    assert walk.commands - walk.json == set(), "commands never run with --json"


def _write_code_image(path: Path) -> None:
    """A PNG with one Code 128 trace code on white (zxing-cpp draws it)."""
    import cv2
    import numpy as np

    from tests.camera.synth import Code, symbol

    img = symbol(Code("cn20", "81234560000000011234", "81234560000000011234"), 3)
    canvas = np.full((img.shape[0] + 80, img.shape[1] + 80), 255, dtype=np.uint8)
    canvas[40 : 40 + img.shape[0], 40 : 40 + img.shape[1]] = img
    cv2.imwrite(str(path), canvas)


def test_the_local_zone_of_these_tests_is_shown_as_cst(shanghai: None) -> None:
    from scanner_agent.times import local

    assert LOCAL_TIME.fullmatch(local("2026-11-23T08:30:01.000+00:00"))
    assert local("2026-11-23T08:30:01.000+00:00") == "2026-11-23 16:30:01 CST"
    assert os.environ["TZ"] == "Asia/Shanghai"
