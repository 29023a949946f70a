"""Config loading: defaults, the contract keys, and errors that name the key."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner_agent.config import (
    CREDENTIAL_RULE,
    AgentConfig,
    SourceConfig,
    SyncConfig,
    check_secret,
    config_from_dict,
    config_warnings,
    load_config,
)
from scanner_agent.kernel import ConfigError

CONTRACT_TOML = """
device_id = "dock-1"
[outbox]
path = "/var/lib/scanner-agent/outbox.db"
[sync]
url = "http://127.0.0.1:8900"        # Trace API v1 base URL
token_file = "/etc/scanner-agent/token"  # or token_env = "NAME"
[[source]]
type = "tcp"
listen = "127.0.0.1:9100"
ack = true
"""


def test_the_documented_contract_keys_load(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(CONTRACT_TOML)
    cfg = load_config(path)
    assert cfg.device_id == "dock-1"
    assert cfg.outbox.path == "/var/lib/scanner-agent/outbox.db"
    assert cfg.sync.url == "http://127.0.0.1:8900"
    assert cfg.sync.token_file == "/etc/scanner-agent/token"
    (src,) = cfg.sources
    assert (src.type, src.options["listen"], src.options["ack"]) == ("tcp", "127.0.0.1:9100", True)


def test_an_empty_config_has_working_defaults() -> None:
    cfg = config_from_dict({})
    assert cfg == AgentConfig()
    assert cfg.sync.verify_tls is True
    assert cfg.default_bill("ship") == "scanner-agent-ship"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"sync": {"tokn_file": "x"}}, "sync.tokn_file: unknown key"),
        ({"sync": {"batch_size": 0}}, "sync.batch_size: must be >= 1"),
        ({"sync": {"batch_size": "10"}}, "sync.batch_size: expected an integer"),
        ({"sync": {"verify_tls": "yes"}}, "sync.verify_tls: expected true or false"),
        ({"sync": {"url": "ftp://x"}}, "sync.url: expected an http:// or https:// URL"),
        ({"sync": {"token_file": "a", "token_env": "B"}}, "sync.token_file: set either"),
        ({"scan": {"action": "steal"}}, "scan.action: expected one of"),
        ({"outbox": []}, "outbox: expected a table"),
        ({"device_id": ""}, "device_id: must not be empty"),
        ({"colour": "blue"}, "colour: unknown key"),
        ({"source": [{"listen": "x:1"}]}, "source[0].type: missing"),
        ({"source": [{"type": "usb-magic"}]}, "source[0].type: unknown source type 'usb-magic'"),
        ({"source": [{"type": "tcp"}]}, "source[0].listen: missing"),
        ({"source": [{"type": "tcp", "listen": "9100"}]}, "source[0].listen: expected host:port"),
        ({"source": [{"type": "tcp", "listen": "h:1", "ack": 1}]}, "source[0].ack: expected bool"),
        (
            {"source": [{"type": "tcp", "listen": "h:1", "baud": 9600}]},
            "source[0].baud: unknown key",
        ),
        (
            {"source": [{"type": "tcp", "listen": "h:1", "terminator": "nul"}]},
            "source[0].terminator",
        ),
        ({"source": [{"type": "replay", "action": "nope"}]}, "source[0].action: expected one of"),
    ],
)
def test_a_bad_value_is_reported_with_its_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert key in str(info.value)


def test_a_file_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[sync]\nbatch_size = -1\n")
    with pytest.raises(ConfigError, match=r"agent\.toml: sync\.batch_size"):
        load_config(path)
    path.write_text("[sync\n")
    with pytest.raises(ConfigError, match="as TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="Failed to read config"):
        load_config(tmp_path / "missing.toml")


def test_token_is_read_from_file_or_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    token.chmod(0o640)
    assert config_from_dict({"sync": {"token_file": str(token)}}).sync.read_token() == "s3cret"
    monkeypatch.setenv("AGENT_TOKEN", "abc-123\n")
    from_env = config_from_dict({"sync": {"token_env": "AGENT_TOKEN"}})
    assert from_env.sync.read_token() == "abc-123"
    monkeypatch.setenv("AGENT_TOKEN", " abc-123 ")  # sent as it is, so never trimmed quietly
    with pytest.raises(ConfigError, match="starts or ends with a space"):
        from_env.sync.read_token()
    missing = config_from_dict({"sync": {"token_env": "NO_SUCH_VAR_X"}})
    with pytest.raises(ConfigError, match="NO_SUCH_VAR_X"):
        missing.sync.read_token()


def test_a_token_file_every_user_may_read_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    token.chmod(0o644)
    cfg = config_from_dict({"sync": {"token_file": str(token)}})
    with pytest.raises(ConfigError, match=r"sync\.token_file: .* readable by every user") as err:
        cfg.sync.read_token()
    assert "s3cret" not in str(err.value)


def test_unreadable_token_file_error_does_not_contain_a_token(tmp_path: Path) -> None:
    cfg = config_from_dict({"sync": {"token_file": str(tmp_path / "nope")}})
    with pytest.raises(ConfigError, match=r"sync\.token_file: failed to read"):
        cfg.sync.read_token()


def test_platform_tables_from_toml_optional_params_and_location_uris(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        "[alihealth]\n"
        'extra = { warehouse_id = "WH-1", qu_receivable = 3 }\n'
        "[epcis]\n"
        'read_point = "urn:epc:id:sgln:0614141.00777.0"\n'
        'biz_location = "https://id.gs1.org/414/0614141008880"\n',
        encoding="utf-8",
    )
    cfg = load_config(path)
    assert cfg.alihealth.extra == {"warehouse_id": "WH-1", "qu_receivable": "3"}
    assert cfg.epcis.biz_location == "https://id.gs1.org/414/0614141008880"
    path.write_text('[epcis]\nread_point = "sgln-0614141"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"epcis\.read_point: expected a URI"):
        load_config(path)


README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_config() -> dict[str, Any]:
    """The README's configuration reference: its ```toml blocks, merged into one table."""
    blocks = re.findall(r"^```toml\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
    assert blocks, "README.md has no ```toml block"
    merged: dict[str, Any] = {}
    for block in blocks:
        for key, value in tomllib.loads(block).items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            elif isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            else:
                merged[key] = value
    return merged


def test_the_readme_documents_every_config_key_and_no_other() -> None:
    """A new config field fails here until the README's reference shows it (and a removed one)."""
    documented = _readme_config()
    tables = {
        f.name: f.default_factory
        for f in dataclasses.fields(AgentConfig)
        if dataclasses.is_dataclass(f.default_factory)
    }
    plain = {f.name for f in dataclasses.fields(AgentConfig)} - tables.keys() - {"sources"}

    def differ(where: str, shown: set[str], known: set[str]) -> str:
        return f"{where}: undocumented {sorted(known - shown)}, unknown {sorted(shown - known)}"

    known = plain | tables.keys() | {"source"}
    assert set(documented) == known, differ("top level", set(documented), known)
    for section, cls in tables.items():
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        assert set(documented[section]) == fields, differ(
            f"[{section}]", set(documented[section]), fields
        )
    # [[source]]: the keys every source has; the rest are the drivers' (docs/drivers.md).
    common = {f.name for f in dataclasses.fields(SourceConfig)} - {"options"}
    shown = {key for table in documented["source"] for key in table}
    assert common <= shown, f"[[source]] lacks {sorted(common - shown)}"


def test_the_readme_shows_each_default_or_names_it() -> None:
    """ "Every key has a default, the value shown below unless its comment names another": a
    value in the reference that is not the default says so on its line ("default ...")."""
    lines: dict[tuple[str, str], str] = {}
    section = ""
    for block in re.findall(
        r"^```toml\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S
    ):
        for line in block.splitlines():
            if m := re.match(r"^\[+([a-z_]+)\]+", line):
                section = m.group(1)
            elif m := re.match(r"^([a-z_]+) = ", line):
                lines[(section, m.group(1))] = line
    documented = _readme_config()
    defaults = AgentConfig()
    unnamed = []
    for f in dataclasses.fields(AgentConfig):
        if f.name == "sources":
            continue
        value = getattr(defaults, f.name)
        pairs = (
            [(f.name, g.name, getattr(value, g.name)) for g in dataclasses.fields(value)]
            if dataclasses.is_dataclass(value)
            else [("", f.name, value)]
        )
        for table, key, default in pairs:
            shown = documented[table][key] if table else documented[key]
            default = list(default) if isinstance(default, tuple) else default
            if shown != default and "default" not in lines[(table, key)].partition("#")[2]:
                unnamed.append(f"{table}.{key}: shows {shown!r}, default {default!r}")
    assert not unnamed, "README values that are not the default and do not say so:\n" + "\n".join(
        unnamed
    )


def test_the_readme_config_reference_is_a_valid_config() -> None:
    cfg = config_from_dict(_readme_config())
    assert cfg.sync.idle_poll_s == SyncConfig().idle_poll_s
    assert len(cfg.sources) == 2


# -- secrets: one line of printable ASCII, and no error ever shows one (issue 16 item 7) -----

_FRAGMENT = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=8, max_size=24)
_BAD_SEPARATOR = st.sampled_from([b"\n", b"\r\n", b"\x00", b"\xc2\xa0", b"\t", b"\x1b", b"\xff"])


@given(st.binary(max_size=64))
def test_a_secret_is_accepted_exactly_when_it_is_one_clean_line(raw: bytes) -> None:
    body = raw[:-1] if raw.endswith(b"\n") else raw
    clean = bool(body) and all(0x20 <= b <= 0x7E for b in body) and body == body.strip(b" ")
    if clean:
        assert check_secret(raw, "sync.token_file", "'/etc/t'") == body.decode("ascii")
        return
    with pytest.raises(ConfigError) as err:
        check_secret(raw, "sync.token_file", "'/etc/t'")
    assert str(err.value).startswith("sync.token_file: '/etc/t' ")
    assert CREDENTIAL_RULE in str(err.value)


@given(st.lists(_FRAGMENT, min_size=2, max_size=4), st.lists(_BAD_SEPARATOR, min_size=3))
def test_a_refused_secret_never_appears_in_the_error(
    fragments: list[str], separators: list[bytes]
) -> None:
    raw = fragments[0].encode()
    for fragment, sep in zip(fragments[1:], separators, strict=False):
        raw += sep + fragment.encode()
    with pytest.raises(ConfigError) as err:
        check_secret(raw, "epcis.token_env", "environment variable 'T'")
    for fragment in fragments:
        assert fragment not in str(err.value)


def test_a_token_file_is_bounded_and_checked_whole(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"A" * (64 * 1024 + 1))
    path.chmod(0o600)
    cfg = config_from_dict({"sync": {"token_file": str(path)}})
    with pytest.raises(ConfigError, match="larger than 65536 bytes"):
        cfg.sync.read_token()
    path.write_bytes(b"PART1-abcdef\nPART2-ghijkl\n")
    with pytest.raises(ConfigError, match="holds 2 lines") as err:
        cfg.sync.read_token()
    assert "PART" not in str(err.value)
    path.write_bytes(b"")
    with pytest.raises(ConfigError, match="is empty"):
        cfg.sync.read_token()


# -- unknown keys name the nearest known one (issue 15 §4) --------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sync": {"tokn_file": "x"}}, "sync.tokn_file: unknown key; did you mean 'token_file'?"),
        ({"sycn": {}}, "sycn: unknown key; did you mean 'sync'?"),
        ({"outbox": {"pth": "x"}}, "outbox.pth: unknown key; did you mean 'path'?"),
        (
            {"source": [{"type": "tcp", "listne": "127.0.0.1:1"}]},
            "source[0].listne: unknown key for a tcp source; did you mean 'listen'?",
        ),
        (
            {"source": [{"type": "tpc", "listen": "127.0.0.1:1"}]},
            "source[0].type: unknown source type 'tpc'; did you mean 'tcp'?",
        ),
        (
            {"alihealth": {"extra": {"warehouse_idd": "W"}}},
            "alihealth.extra.warehouse_idd: not an optional parameter of the 码上放心 bill "
            "upload; did you mean 'warehouse_id'?",
        ),
    ],
)
def test_an_unknown_key_suggests_the_nearest_known_one(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert str(err.value).startswith(message)


def test_an_unknown_key_far_from_every_known_one_suggests_nothing() -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"sync": {"zzzzzz": 1}})
    assert "did you mean" not in str(err.value)
    assert "(known: " in str(err.value)


# -- hardening: modes, plain http, listen addresses (issue 16 item 10) ---------------------


@pytest.mark.parametrize("mode", ["777", "0777", "0666", "0662", "0002", "2"])
def test_a_world_writable_control_mode_is_refused(mode: str) -> None:
    with pytest.raises(ConfigError, match=r"control\.mode: .* every user"):
        config_from_dict({"control": {"mode": mode}})


@pytest.mark.parametrize("mode", ["0660", "0600", "0640", "0664", "660"])
def test_a_group_or_owner_control_mode_is_accepted(mode: str) -> None:
    assert config_from_dict({"control": {"mode": mode}}).control.mode == mode


@pytest.mark.parametrize(
    ("section", "url"),
    [
        ("sync", "http://192.0.2.10:8900"),
        ("sync", "http://trace.example.com"),
        ("sync", "http://10.0.0.1/"),
        ("sync", "http://0.0.0.0:8900"),
        ("epcis", "http://epcis.example.com/"),
        ("alihealth", "http://gw.api.taobao.com/router/rest"),
    ],
)
def test_plain_http_off_loopback_is_refused_unless_allowed(section: str, url: str) -> None:
    data: dict[str, Any] = {
        "sync": {"protocol": {"sync": "trace-api"}.get(section, section)},
        "epcis": {"read_point": "urn:x:1", "biz_location": "urn:x:2"},
        "alihealth": {"app_key": "k", "app_secret_file": "/s", "ref_user_id": "r"},
    }
    data[section]["url"] = url
    with pytest.raises(ConfigError, match=rf"{section}\.url: plain http://"):
        config_from_dict(data)
    data["sync"]["allow_insecure_http"] = True
    cfg = config_from_dict(data)
    (warning,) = config_warnings(cfg)
    assert warning.startswith(f"{section}.url: plain http://")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8900",
        "http://127.9.8.7",
        "http://[::1]:8900/",
        "http://localhost:8900",
        "https://trace.example.com",
        "https://192.0.2.10",
    ],
)
def test_https_or_loopback_http_is_accepted_without_a_warning(url: str) -> None:
    cfg = config_from_dict({"sync": {"url": url}})
    assert config_warnings(cfg) == []


@pytest.mark.parametrize("section", ["sync", "epcis", "alihealth"])
@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://[::1", "not a url"),
        ("https://[zz::1]/", "not a url"),
        ("https://127.0.0.1:99999", "port"),
        ("https://127.0.0.1:port/", "port"),
        ("https://", "no host"),
        ("https:///v1", "no host"),
        ("https://trace .example.com", "space or control character"),
        ("https://trace.example.com/\tv1", "space or control character"),
        ("https://user:pa55word@trace.example.com", "user name or password"),
        ("https://trace.example.com/v1?x=1", "no query"),
        ("https://trace.example.com/v1#top", "no query"),
    ],
)
def test_a_service_url_that_is_no_usable_base_url_is_refused_with_its_key(
    section: str, url: str, words: str
) -> None:
    """Not a traceback (``check-config``, ``run`` and ``doctor`` all printed one for
    ``http://[::1``), not a start that can never connect, never a password echoed back."""
    data: dict[str, Any] = {
        "sync": {"protocol": {"sync": "trace-api"}.get(section, section)},
        "epcis": {"read_point": "urn:x:1", "biz_location": "urn:x:2"},
        "alihealth": {"app_key": "k", "app_secret_file": "/s", "ref_user_id": "r"},
    }
    data[section]["url"] = url
    with pytest.raises(ConfigError, match=rf"^{section}\.url: ") as err:
        config_from_dict(data)
    assert words in str(err.value)
    assert "pa55word" not in str(err.value)


@pytest.mark.parametrize(
    ("listen", "accepted"),
    [
        ("127.0.0.1:9464", True),
        ("127.5.5.5:9464", True),
        ("[::1]:9464", True),
        ("localhost:9464", True),
        ("0.0.0.0:9464", False),
        ("[::]:9464", False),
        (":9464", False),
        ("192.0.2.1:9464", False),
        ("127.0.0.1.invalid:9464", False),  # starts like loopback; resolves to nothing
        ("127.0.0.1:99999", False),
    ],
)
def test_metrics_listen_is_checked_after_resolution(listen: str, accepted: bool) -> None:
    if accepted:
        assert config_from_dict({"metrics": {"listen": listen}}).metrics.listen == listen
    else:
        with pytest.raises(ConfigError, match=r"metrics\.listen"):
            config_from_dict({"metrics": {"listen": listen}})


def test_find_source_takes_a_source_by_name_or_device_and_names_the_others() -> None:
    cfg = AgentConfig(
        sources=(
            SourceConfig("camera", name="dock-door", options={"device": "/dev/video0"}),
            SourceConfig("camera", options={"device": "rtsp://cam"}),
            SourceConfig("tcp", name="fixed", options={"listen": "127.0.0.1:9100"}),
        )
    )
    assert cfg.find_source("camera", "dock-door").options["device"] == "/dev/video0"
    assert cfg.find_source("camera", "rtsp://cam").name == ""
    with pytest.raises(ConfigError, match="Expected one of dock-door, rtsp://cam"):
        cfg.find_source("camera", "fixed")  # a source of another type is not a camera
    with pytest.raises(ConfigError, match="it has no serial source"):
        cfg.find_source("serial", "fixed")
