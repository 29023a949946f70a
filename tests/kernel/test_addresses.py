"""The one ``host:port`` reader: every address the agent is given is read by one rule.

Four readers used to exist with four rules: one crashed with a bare ValueError on a port
such as ``²`` (``str.isdigit`` says yes, ``int`` says no), two took ``١٢`` (Arabic-Indic
digits) for port 12, and brackets were stripped wherever they stood.
"""

from __future__ import annotations

import ipaddress
import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from scanner_agent.config import config_from_dict
from scanner_agent.kernel import ConfigError, parse_host_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8900", ("127.0.0.1", 8900)),
        ("[::1]:8900", ("::1", 8900)),
        ("::1:8900", ("::1", 8900)),  # unbracketed IPv6: the port is after the last colon
        ("localhost:0", ("localhost", 0)),
        ("scanner-dock.example:65535", ("scanner-dock.example", 65535)),
        (":8900", ("0.0.0.0", 8900)),
    ],
)
def test_host_port_is_read(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text, "listen", default_host="0.0.0.0") == expected


@pytest.mark.parametrize(
    "text",
    [
        "8900",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:http",
        "127.0.0.1:70000",
        "127.0.0.1:-1",
        "127.0.0.1: 80",
        "127.0.0.1:²",  # isdigit() but not a number int() reads
        "127.0.0.1:١٢",  # Arabic-Indic digits
        "[::1:9100",
        "::1]:9100",
        "[[::1]]:9100",
        "[::1]x:9100",
        "",
    ],
)
def test_anything_else_is_refused_naming_the_key(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_host_port(text, "source[3].listen", default_host="0.0.0.0")
    assert str(caught.value) == f"source[3].listen: expected host:port, got {text!r}"


def test_the_example_is_shown_when_given() -> None:
    with pytest.raises(
        ConfigError, match=r"^metrics\.listen: expected host:port such as 1\.2\.3\.4:5, got 'x'$"
    ):
        parse_host_port("x", "metrics.listen", example="1.2.3.4:5")


def test_an_empty_host_is_refused_without_a_default() -> None:
    with pytest.raises(ConfigError, match="expected host:port"):
        parse_host_port(":9100", "metrics.listen")
    assert parse_host_port(":9100", "metrics.listen", default_host="") == ("", 9100)


_hostnames = st.from_regex(
    r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}", fullmatch=True
)


@given(
    host=st.one_of(
        st.ip_addresses(v=4).map(str),
        st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
        _hostnames,
    ),
    port=st.integers(0, 65535),
)
def test_every_host_and_port_reads_back(host: str, port: int) -> None:
    assert parse_host_port(f"{host}:{port}", "k") == (host.strip("[]"), port)


@given(text=st.text(alphabet=string.printable + "[]:²١٢٣ ", max_size=40))
@example("127.0.0.1:²")
@example("[]:80")
def test_any_text_is_read_or_refused_with_a_config_error(text: str) -> None:
    """Never another exception, and what is read gives back the text it came from."""
    try:
        host, port = parse_host_port(text, "k", default_host="")
    except ConfigError as exc:
        refusal = str(exc)
    else:
        refusal = ""
    if refusal:
        assert refusal == f"k: expected host:port, got {text!r}"
        return
    port_text = text.rpartition(":")[2]
    assert port_text.isascii()
    assert int(port_text) == port <= 65535
    assert "[" not in host
    assert "]" not in host
    assert text in (f"{host}:{port_text}", f"[{host}]:{port_text}")


@pytest.mark.parametrize("port", ["²", "١٢", "70000"])
def test_a_tcp_source_on_such_a_port_is_a_config_error(port: str) -> None:
    """It was a bare ValueError (a traceback in check-config) or a source on port 12."""
    with pytest.raises(ConfigError, match=r"^source\[0\]\.listen: expected host:port, got "):
        config_from_dict({"source": [{"type": "tcp", "listen": f"127.0.0.1:{port}"}]})


@pytest.mark.parametrize("listen", ["[127.0.0.1:9464", "127.0.0.1:٩٤٦٤"])
def test_metrics_listen_follows_the_same_rule(listen: str) -> None:
    with pytest.raises(ConfigError, match=r"^metrics\.listen: expected host:port such as"):
        config_from_dict({"metrics": {"listen": listen}})


def test_ipv6_hosts_need_no_brackets_but_keep_every_colon() -> None:
    host, port = parse_host_port("fe80::1:9100", "k")
    assert (ipaddress.ip_address(host), port) == (ipaddress.ip_address("fe80::1"), 9100)
