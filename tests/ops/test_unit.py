"""The systemd unit, sysusers and tmpfiles entries, checked by systemd's own tools."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.systemd import ROOT, SYSTEMD_DIR, tool, unit_settings

MAX_EXPOSURE = 2.0
DOCUMENTED_EXPOSURE = re.compile(r"rates the unit \*\*([0-9.]+) ")
"""The figure docs/operations.md states; the unit's header comment says the same."""


def exposure(systemd_analyze: str, unit: Path) -> float:
    """``systemd-analyze security --offline=true``'s overall exposure level of ``unit``."""
    result = subprocess.run(
        [systemd_analyze, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for [\w.@-]+\.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def test_unit_passes_systemd_analyze_verify(systemd_analyze: str, test_unit: Path) -> None:
    result = subprocess.run(
        [systemd_analyze, "verify", str(test_unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "scanner-agent.service" not in result.stderr, result.stderr


def test_unit_exposure_is_rated_at_most_2_and_as_documented(
    systemd_analyze: str, test_unit: Path
) -> None:
    figure = exposure(systemd_analyze, test_unit)
    assert figure <= MAX_EXPOSURE
    documented = DOCUMENTED_EXPOSURE.search((ROOT / "docs" / "operations.md").read_text())
    assert documented, "docs/operations.md states the figure"
    assert figure == float(documented.group(1))
    assert f"rates this unit {figure} " in (SYSTEMD_DIR / "scanner-agent.service").read_text()


def test_unit_lets_the_udev_monitor_open_its_netlink_socket() -> None:
    """pyudev's monitor is an AF_NETLINK socket: blocked, hot-plug falls back to polling."""
    s = unit_settings(SYSTEMD_DIR / "scanner-agent.service")
    families = " ".join(s["RestrictAddressFamilies"]).split()
    assert "AF_NETLINK" in families
    assert not any(f.startswith("~") for f in families)  # an allow list, not a deny list


def test_unit_is_a_notify_service_with_watchdog_restart_and_its_directories() -> None:
    s = unit_settings(SYSTEMD_DIR / "scanner-agent.service")
    assert s["Type"] == ["notify"]
    assert s["WatchdogSec"]
    assert s["Restart"] == ["on-failure"]
    assert s["User"] == ["scanner-agent"]
    assert set(s["SupplementaryGroups"][0].split()) == {"dialout", "video", "scanner-dispatch"}
    for key in ("StateDirectory", "ConfigurationDirectory", "RuntimeDirectory"):
        assert s[key] == ["scanner-agent"], key
    assert "-HUP" in s["ExecReload"][0]
    assert s["ExecStart"][0].endswith("run --config /etc/scanner-agent/agent.toml")


def test_unit_keeps_device_and_network_access_the_agent_needs() -> None:
    s = unit_settings(SYSTEMD_DIR / "scanner-agent.service")
    allowed = {v.split()[0] for v in s["DeviceAllow"]}
    assert {
        "char-ttyS",
        "char-ttyUSB",
        "char-ttyACM",
        "char-hidraw",
        "char-input",
        "char-video4linux",
    } <= allowed
    assert all(v.split()[1] == "rw" for v in s["DeviceAllow"])
    families = set(s["RestrictAddressFamilies"][0].split())
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= families
    assert "PrivateNetwork" not in s
    assert "PrivateDevices" not in s


def test_sysusers_entry_creates_the_user_in_the_device_groups(tmp_path: Path) -> None:
    sysusers = tool("systemd-sysusers")
    (tmp_path / "etc").mkdir()
    conf = SYSTEMD_DIR / "scanner-agent.sysusers.conf"
    result = subprocess.run(
        [sysusers, f"--root={tmp_path}", str(conf)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text()
    assert re.search(
        r"^scanner-agent:x:\d+:\d+:[^:]*:/var/lib/scanner-agent:/usr/sbin/nologin$", passwd, re.M
    )
    groups = {
        line.split(":")[0]: line.split(":")[3].split(",")
        for line in (tmp_path / "etc" / "group").read_text().splitlines()
    }
    for group in ("dialout", "video"):
        assert "scanner-agent" in groups[group], group
    assert "scanner-agent" not in groups.get("plugdev", [])


def test_tmpfiles_entry_creates_config_and_state_directories(tmp_path: Path) -> None:
    sysusers = tool("systemd-sysusers")
    tmpfiles = tool("systemd-tmpfiles")
    (tmp_path / "etc").mkdir()
    subprocess.run(
        [sysusers, f"--root={tmp_path}", str(SYSTEMD_DIR / "scanner-agent.sysusers.conf")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    result = subprocess.run(
        [
            tmpfiles,
            f"--root={tmp_path}",
            "--create",
            str(SYSTEMD_DIR / "scanner-agent.tmpfiles.conf"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr

    def field(file: str, index: int) -> int:
        lines = (tmp_path / "etc" / file).read_text().splitlines()
        return int(next(ln.split(":")[index] for ln in lines if ln.startswith("scanner-agent:")))

    uid, gid = field("passwd", 2), field("group", 2)
    state = (tmp_path / "var" / "lib" / "scanner-agent").stat()
    conf = (tmp_path / "etc" / "scanner-agent").stat()
    assert (state.st_uid, state.st_gid, state.st_mode & 0o777) == (uid, gid, 0o750)
    assert (conf.st_uid, conf.st_gid, conf.st_mode & 0o777) == (0, gid, 0o750)


@pytest.mark.parametrize("name", ["scanner-agent.sysusers.conf", "scanner-agent.tmpfiles.conf"])
def test_entries_name_only_the_service_user_and_its_paths(name: str) -> None:
    text = (SYSTEMD_DIR / name).read_text()
    assert "scanner-agent" in text
    assert "/home" not in text
    assert "/root" not in text
