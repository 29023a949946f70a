"""``scanner-agent devices`` and ``scanner-agent profiles``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scanner_agent.cli import main
from tests.drivers.fake_sysfs import HID_POS_DESCRIPTOR, FakeSysfs


def test_devices_json_works_on_this_machine() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "scanner_agent", "devices", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {"serial", "hid", "input", "cameras"}
    assert all(isinstance(v, list) for v in data.values())


def test_devices_reads_the_given_sysfs_and_names_matching_profiles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    assert main(["devices", "--sysfs", str(fake.root), "--json"]) == 0
    (hid,) = json.loads(capsys.readouterr().out)["hid"]
    assert hid["usb_id"] == "1eab:1a10"
    assert hid["hid_pos"] is True
    assert hid["profiles"] == [{"profile": "newland-hr22", "mode": "hid-pos"}]

    assert main(["devices", "--sysfs", str(fake.root)]) == 0
    text = capsys.readouterr().out
    assert "/dev/hidraw0" in text
    assert "newland-hr22 (hid-pos)" in text
    assert "[HID POS]" in text


def test_profiles_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # JSON Lines
    assert {"id": "newland-hr22", "vendor": "Newland", "model": "HR22"}.items() <= next(
        r for r in rows if r["id"] == "newland-hr22"
    ).items()
    assert main(["profiles", "show", "honeywell-xenon-1900g", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["commands"]["trigger_on"] == "16 54 0d"
    assert main(["profiles", "show", "newland-hr22"]) == 0
    assert "hidpos_layout: newland" in capsys.readouterr().out


def test_profiles_show_of_an_unknown_profile_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "show", "no-such-scanner"]) == 2
    assert "no-such-scanner.toml" in capsys.readouterr().err


def test_profiles_validate_exits_non_zero_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profiles", "validate", "--dir", str(tmp_path)]) == 0
    assert "profiles valid" in capsys.readouterr().out
    (tmp_path / "broken.toml").write_text(
        '[profile]\nvendor = "A"\nmodel = "B"\ninterfaces = ["rs232"]\n[serial]\nbaudrate = 1234\n'
    )
    assert main(["profiles", "validate", "--dir", str(tmp_path)]) == 3  # ran, found problems
    captured = capsys.readouterr()
    assert "'broken.toml': [serial].baudrate" in captured.err
    assert main(["profiles", "list", "--dir", str(tmp_path)]) == 0
    assert "broken" in capsys.readouterr().out
