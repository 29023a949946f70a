"""Config loading: defaults, the contract keys, and errors that name the key."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.config import (
    AgentConfig,
    SourceConfig,
    SyncConfig,
    config_from_dict,
    load_config,
)
from scanner_agent.errors import ConfigError

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
    monkeypatch.setenv("AGENT_TOKEN", " abc ")
    assert config_from_dict({"sync": {"token_env": "AGENT_TOKEN"}}).sync.read_token() == "abc"
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


def test_the_readme_config_reference_is_a_valid_config() -> None:
    cfg = config_from_dict(_readme_config())
    assert cfg.sync.idle_poll_s == SyncConfig().idle_poll_s
    assert len(cfg.sources) == 2
