"""``sync.protocol`` and the ``[alihealth]`` / ``[epcis]`` tables: defaults, errors naming keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scanner_agent.config import AgentConfig, config_from_dict, read_credential
from scanner_agent.kernel import ConfigError

ALI = {"app_key": "k", "app_secret_file": "/etc/scanner-agent/alihealth.secret", "ref_user_id": "r"}
EPCIS = {"url": "https://epcis.example", "read_point": "urn:x:rp", "biz_location": "urn:x:loc"}


def test_trace_api_stays_the_default_and_needs_no_platform_table() -> None:
    cfg = config_from_dict({})
    assert cfg.sync.protocol == "trace-api"
    assert cfg.alihealth.url == "https://eco.taobao.com/router/rest"
    assert (cfg.alihealth.api, cfg.alihealth.sign_method, cfg.alihealth.max_codes) == (
        "kyt",
        "hmac-sha256",
        10_000,
    )
    assert config_from_dict({"sync": {"protocol": "alihealth"}, "alihealth": ALI}).alihealth.app_key
    assert config_from_dict({"sync": {"protocol": "epcis"}, "epcis": EPCIS}).epcis.read_point


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sync": {"protocol": "mqtt"}}, "sync.protocol: expected one of trace-api, alihealth"),
        (
            {"sync": {"protocol": "alihealth"}},
            'alihealth.app_key: required by protocol "alihealth"',
        ),
        (
            {"sync": {"protocol": "alihealth"}, "alihealth": {**ALI, "ref_user_id": ""}},
            "alihealth.ref_user_id: required",
        ),
        (
            {"sync": {"protocol": "alihealth"}, "alihealth": {**ALI, "url": "eco.taobao.com"}},
            "alihealth.url: expected an http",
        ),
        ({"alihealth": {"api": "retail"}}, "alihealth.api: expected kyt or lsyd"),
        ({"alihealth": {"sign_method": "sha1"}}, "alihealth.sign_method: expected md5"),
        ({"alihealth": {"max_codes": 10_001}}, "alihealth.max_codes: must be from 1 to 10000"),
        ({"alihealth": {"physic_type": "3"}}, "alihealth.physic_type: expected an integer"),
        ({"alihealth": {"app_secret": "inline"}}, "alihealth.app_secret: unknown key"),
        ({"sync": {"protocol": "epcis"}}, "epcis.url: expected an http"),
        (
            {"sync": {"protocol": "epcis"}, "epcis": {**EPCIS, "biz_location": ""}},
            'epcis.biz_location: required by protocol "epcis"',
        ),
        ({"epcis": {"token_file": "/a", "token_env": "B"}}, "epcis.token_file: set either"),
        ({"epcis": {"error_behaviour": "ignore"}}, "epcis.error_behaviour: expected proceed"),
        ({"epcis": {"poll_max_s": 0.1}}, "epcis.poll_max_s: must be >= poll_initial_s"),
        (
            {"sync": {"protocol": "epcis"}, "epcis": {**EPCIS, "read_point": "sgln 0614141"}},
            "epcis.read_point: expected a URI (scheme:rest",
        ),
        (
            {"sync": {"protocol": "epcis"}, "epcis": {**EPCIS, "biz_location": "0614141.00888.0"}},
            "epcis.biz_location: expected a URI",
        ),
        (
            {"epcis": {"read_point": "urn:epc:id:sgln:0614141.00777.0 x"}},
            "epcis.read_point: expected",
        ),
        ({"epcis": {"biz_location": ":no-scheme"}}, "epcis.biz_location: expected a URI"),
        ({"alihealth": {"status_api": "yljg"}}, "alihealth.status_api: expected scqy, wes, lsyd"),
        ({"alihealth": {"extra": "warehouse_id=1"}}, "alihealth.extra: expected a table"),
        (
            {"alihealth": {"extra": {"warehouse": "W1"}}},
            "alihealth.extra.warehouse: not an optional parameter of the 码上放心 bill upload",
        ),
        (
            {"alihealth": {"extra": {"bill_code": "X"}}},
            "alihealth.extra.bill_code: not an optional parameter",
        ),
        (
            {"alihealth": {"extra": {"warehouse_id": True}}},
            "alihealth.extra.warehouse_id: expected a string or a number",
        ),
        (
            {"alihealth": {"extra": {"drug_id": ["a"]}}},
            "alihealth.extra.drug_id: expected a string or a number",
        ),
    ],
)
def test_bad_platform_settings_name_their_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        config_from_dict(data)


def _ali(path: Path) -> AgentConfig:
    return config_from_dict(
        {"sync": {"protocol": "alihealth"}, "alihealth": {**ALI, "app_secret_file": str(path)}}
    )


def test_the_app_secret_is_the_sinks_credential_and_must_not_be_world_readable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "secret"
    path.write_text("s3cret\n")
    path.chmod(0o640)
    assert read_credential(_ali(path)) == "s3cret"
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"alihealth\.app_secret_file: .* readable by every user"):
        read_credential(_ali(path))
    with pytest.raises(ConfigError, match=r"alihealth\.app_secret_file: failed to read"):
        read_credential(_ali(tmp_path / "missing"))
    token = tmp_path / "epcis"
    token.write_text("t0k\n")
    token.chmod(0o600)
    cfg = config_from_dict(
        {"sync": {"protocol": "epcis"}, "epcis": {**EPCIS, "token_file": str(token)}}
    )
    assert read_credential(cfg) == "t0k"


@pytest.mark.parametrize(
    "uri",
    [
        "urn:epc:id:sgln:0614141.00777.0",
        "https://id.gs1.org/414/0614141007770",
        "urn:cn:site:仓库一号",
    ],
)
def test_epcis_locations_take_any_absolute_uri(uri: str) -> None:
    cfg = config_from_dict(
        {"sync": {"protocol": "epcis"}, "epcis": {**EPCIS, "read_point": uri, "biz_location": uri}}
    )
    assert (cfg.epcis.read_point, cfg.epcis.biz_location) == (uri, uri)


def test_alihealth_extra_and_status_api_are_read_and_numbers_become_text() -> None:
    cfg = config_from_dict(
        {
            "sync": {"protocol": "alihealth"},
            "alihealth": {
                **ALI,
                "status_api": "wes",
                "extra": {"warehouse_id": "WH-1", "qu_receivable": 12, "from_person": "张三"},
            },
        }
    )
    assert cfg.alihealth.status_api == "wes"
    assert cfg.alihealth.extra == {
        "warehouse_id": "WH-1",
        "qu_receivable": "12",
        "from_person": "张三",
    }
    assert config_from_dict({}).alihealth.extra == {}
    assert config_from_dict({}).alihealth.status_api == ""
