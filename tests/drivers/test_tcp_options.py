"""The tcp source's options: declared once (drivers/registry.py), documented, validated."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from drivers.registry import SOURCE_TYPES, resolve_options
from scanner_agent.kernel import ConfigError

DOC = Path(__file__).resolve().parents[2] / "docs" / "tcp-protocol.md"


def _documented() -> dict[str, object]:
    block = re.search(r"^```toml\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)
    assert block, "docs/tcp-protocol.md has no ```toml block"
    (table,) = tomllib.loads(block[1])["source"]
    return dict(table)


def test_the_protocol_page_shows_every_tcp_option_with_its_default() -> None:
    shown = _documented()
    declared = SOURCE_TYPES["tcp"].options
    assert set(shown) - {"type"} == set(declared)
    defaults = resolve_options("tcp", {"listen": "1.2.3.4:1"}, "s")
    for key, value in shown.items():
        if key not in ("type", "listen", "ack"):
            assert defaults[key] == value, key


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("protocol", 3, "expected one of 1, 2"),
        ("protocol", 0, "expected one of 1, 2"),
        ("max_clients", 0, "expected at least 1, got 0"),
        ("max_in_flight", 0, "expected at least 1, got 0"),
        ("max_in_flight_bytes", 100, "expected at least 1024, got 100"),
        ("total_in_flight", -1, "expected at least 1, got -1"),
        ("total_in_flight_bytes", 0, "expected at least 1024, got 0"),
        ("idle_timeout_s", -1.0, "expected 0 or more, got -1"),
        ("read_timeout_s", -0.5, "expected 0 or more, got -0.5"),
        ("write_timeout_s", -1, "expected 0 or more, got -1"),
        ("keepalive_s", -1, "expected 0 or more, got -1"),
        ("refused_per_s", 0, "expected more than 0, got 0"),
        ("refused_burst", 0, "expected at least 1, got 0"),
        ("allow", ["10.0.0.0/8", "scanner-1"], "'scanner-1' is not an address or CIDR"),
        ("allow", "10.0.0.0/8", "expected list"),
        ("allow", [10], "expected a list of str"),
    ],
)
def test_bad_tcp_options_are_refused_naming_the_key(key: str, value: object, message: str) -> None:
    options = {"listen": "127.0.0.1:9100", key: value}
    with pytest.raises(ConfigError, match=rf"source\[0\]\.{key}: {re.escape(message)}"):
        resolve_options("tcp", options, "source[0]")


def test_the_limits_from_a_config_reach_the_source() -> None:
    from drivers.registry import build_source
    from drivers.tcp import TcpSource

    source = build_source(
        "tcp", {"listen": "127.0.0.1:0", "allow": ["10.0.0.0/8"], "idle_timeout_s": 5}
    )
    assert isinstance(source, TcpSource)
    assert source.limits.idle_timeout_s == 5.0
    assert [str(n) for n in source.limits.allow] == ["10.0.0.0/8"]
