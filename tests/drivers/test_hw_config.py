"""``[[source]]`` tables for serial, hidpos and wedge: checked when the config loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivers import source_profiles
from drivers.hidraw import HidPosSource
from drivers.registry import build_source
from drivers.serialport import SerialSource
from drivers.wedge import WedgeSource
from scanner_agent.config import config_from_dict
from scanner_agent.kernel import ConfigError
from tests.support.hidpos import ACME_PROFILE


def load(**source: Any) -> Any:
    return config_from_dict({"source": [source]})


@pytest.mark.parametrize(
    ("source", "key", "message"),
    [
        (
            {"type": "serial", "port": "/dev/ttyACM0", "profile": "nope"},
            "profile",
            "no such profile",
        ),
        ({"type": "hidpos", "profile": "acme-9000"}, "profile", "no such profile"),
        ({"type": "wedge", "profile": "x", "device": "/dev/input/event0"}, "profile", "no such"),
        ({"type": "serial", "port": "/dev/ttyS0", "protocol": "modbus"}, "protocol", "plain"),
        ({"type": "serial", "port": "/dev/ttyS0", "baudrate": 0}, "baudrate", "50..4000000"),
        ({"type": "serial", "port": "", "profile": "generic-serial"}, "port", "path or URL"),
        (
            {"type": "serial", "port": "/dev/ttyS0", "profile": "newland-hr32"},
            "profile",
            "no serial",
        ),
        ({"type": "hidpos", "profile": "generic-serial"}, "profile", "no [hidpos] layout"),
        ({"type": "wedge", "profile": "generic-hidpos"}, "profile", "no keyboard interface"),
        ({"type": "wedge"}, "device", "lists no keyboard USB id"),
        ({"type": "wedge", "device": "/dev/input/event3", "layout": "dvorak"}, "layout", "us"),
        ({"type": "hidpos", "reconnect_max_s": 0}, "reconnect_max_s", "0 < seconds"),
        ({"type": "serial", "port": "/dev/ttyS0", "baud": 9600}, "baud", "unknown key"),
    ],
)
def test_bad_hardware_sources_are_refused_naming_the_key(
    source: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=r"source\[0\]\." + key) as info:
        load(**source)
    assert message in str(info.value)


def test_hardware_sources_load_and_build() -> None:
    cfg = config_from_dict(
        {
            "source": [
                {
                    "type": "serial",
                    "port": "/dev/ttyACM0",
                    "profile": "honeywell-xenon-1900g",
                    "baudrate": 115200,
                },
                {"type": "serial", "port": "loop://", "protocol": "ssi"},
                {"type": "hidpos", "profile": "newland-hr22", "usb_serial": "HR22-1"},
                {"type": "hidpos", "device": "/dev/hidraw2", "name": "dock-2"},
                {"type": "wedge", "profile": "newland-hr22", "layout": "de", "grab": False},
            ]
        }
    )
    xenon, ssi_src, hr22, named, wedge = (
        build_source(src.type, src.options, name=src.name, where=f"source[{i}]")
        for i, src in enumerate(cfg.sources)
    )
    assert isinstance(xenon, SerialSource)
    assert xenon.name == "serial:/dev/ttyACM0"
    assert xenon.protocol == "honeywell"
    assert xenon.settings.baudrate == 115200
    assert xenon.model == "Honeywell Xenon 1900g"
    assert xenon.commands["trigger_on"] == b"\x16T\r"
    assert isinstance(ssi_src, SerialSource)
    assert ssi_src.protocol == "ssi"
    assert isinstance(hr22, HidPosSource)
    assert hr22.name == "hidpos:HR22-1"
    assert hr22.layout.data_offset == 2  # the newland layout
    assert isinstance(named, HidPosSource)
    assert named.name == "dock-2"
    assert named.device == "/dev/hidraw2"
    assert isinstance(wedge, WedgeSource)
    assert wedge.name == "wedge:newland-hr22"
    assert (wedge.layout, wedge.grab) == ("de", False)
    assert not wedge.connected
    assert wedge.errors == 0
    assert wedge.last_scan_at is None


def test_a_hidpos_source_reads_with_the_layout_of_a_site_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source_profiles, "PROFILE_DIRS", (tmp_path,))
    (tmp_path / "acme-s9.toml").write_text(ACME_PROFILE, encoding="utf-8")
    broken = ACME_PROFILE.replace("data_size = 32", "data_size = 33")
    (tmp_path / "acme-s8.toml").write_text(broken, encoding="utf-8")

    cfg = load(type="hidpos", profile="acme-s9", device="/dev/hidraw5")
    source = build_source(cfg.sources[0].type, cfg.sources[0].options, where="source[0]")
    assert isinstance(source, HidPosSource)
    assert source.layout == source.profile.hidpos_report_layout
    assert (source.layout.report_id, source.layout.continuation_mask) == (3, 0x80)

    with pytest.raises(ConfigError, match=r"source\[0\]\.profile: ") as info:
        load(type="hidpos", profile="acme-s8", device="/dev/hidraw5")
    assert str(info.value).endswith(
        "'acme-s8.toml': [hidpos].continuation_offset: the continuation flag (bytes 37..37) "
        "overlaps the data (bytes 5..37)"
    )
