"""Each sink's settings are checked once: the config (check-config, run) and a client built
by hand refuse the same value with the same words (the 码上放心 and EPCIS checks used to be
written twice, worded apart)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner_agent.config import config_from_dict
from scanner_agent.kernel import ConfigError
from scanner_agent.sinks.alihealth import (
    API_METHODS,
    BILLSTATUS_METHODS,
    SIGN_METHODS,
    AliHealthConfig,
)
from scanner_agent.sinks.epcis import (
    CONTENT_TYPES,
    ERROR_BEHAVIOURS,
    EpcisCaptureConfig,
    EpcisConfig,
)

DOCUMENT = EpcisConfig(read_point="urn:x:rp", biz_location="urn:x:loc")


def _config_error(table: str, values: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        config_from_dict({table: values})
    return str(err.value)


def _client_error(build: Any) -> str:
    with pytest.raises(ConfigError) as err:
        build()
    return str(err.value)


words = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)


@given(
    key=st.sampled_from(["api", "sign_method", "status_api"]),
    value=words,
)
def test_a_bad_alihealth_word_is_refused_alike_by_the_config_and_the_client(
    key: str, value: str
) -> None:
    allowed = {"api": API_METHODS, "sign_method": SIGN_METHODS, "status_api": BILLSTATUS_METHODS}
    if value in allowed[key]:
        return
    by_config = _config_error("alihealth", {key: value})
    by_client = _client_error(
        lambda: AliHealthConfig(app_key="k", secret="s", ref_user_id="r", **{key: value})
    )
    assert by_config == by_client
    assert by_config.startswith(f"alihealth.{key}: expected ")


@given(max_codes=st.integers(-5, 30_000).filter(lambda n: not 1 <= n <= 10_000))
def test_max_codes_out_of_range_is_refused_alike(max_codes: int) -> None:
    by_config = _config_error("alihealth", {"max_codes": max_codes})
    by_client = _client_error(
        lambda: AliHealthConfig(app_key="k", secret="s", ref_user_id="r", max_codes=max_codes)
    )
    assert by_config == by_client == "alihealth.max_codes: must be from 1 to 10000"


@given(name=words.filter(lambda n: n.isidentifier()))
def test_an_unknown_extra_parameter_is_refused_alike(name: str) -> None:
    from scanner_agent.kernel import PLATFORM_PARAMS

    if name in PLATFORM_PARAMS:
        return
    by_config = _config_error("alihealth", {"extra": {name: "1"}})
    by_client = _client_error(
        lambda: AliHealthConfig(app_key="k", secret="s", ref_user_id="r", extra={name: "1"})
    )
    assert by_config == by_client
    assert by_config.startswith(f"alihealth.extra.{name}: not an optional parameter")


@pytest.mark.parametrize(
    "values",
    [
        {"content_type": "text/xml"},
        {"error_behaviour": "ignore"},
        {"poll_initial_s": 0.0},
        {"poll_initial_s": 2.0, "poll_max_s": 1.0},
        {"poll_timeout_s": -1.0},
        {"max_rounds": 0},
    ],
)
def test_a_bad_epcis_capture_setting_is_refused_alike(values: dict[str, Any]) -> None:
    by_config = _config_error("epcis", values)
    by_client = _client_error(
        lambda: EpcisCaptureConfig(url="https://epcis.example", document=DOCUMENT, **values)
    )
    assert by_config == by_client


def test_the_allowed_values_are_the_protocols_own_tables() -> None:
    assert set(API_METHODS) == {"kyt", "lsyd"}
    assert set(BILLSTATUS_METHODS) == {"scqy", "wes", "lsyd"}
    assert SIGN_METHODS == ("md5", "hmac", "hmac-sha256")
    assert CONTENT_TYPES == ("application/json", "application/ld+json")
    assert ERROR_BEHAVIOURS == ("proceed", "rollback")


@pytest.mark.parametrize("url", ["ftp://epcis.example", "https://u:p@epcis.example", "https://"])
def test_a_capture_client_refuses_a_url_the_config_refuses(url: str) -> None:
    by_config = _config_error_full(
        {
            "sync": {"protocol": "epcis"},
            "epcis": {"url": url, "read_point": "urn:x", "biz_location": "urn:y"},
        }
    )
    by_client = _client_error(lambda: EpcisCaptureConfig(url=url, document=DOCUMENT))
    assert by_config == by_client


def _config_error_full(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    return str(err.value)
