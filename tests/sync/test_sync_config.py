"""The sync keys added for batching, pipelining and token polling: defaults and errors naming keys."""

from __future__ import annotations

from typing import Any

import pytest

from scanner_agent.config import SyncConfig, config_from_dict
from scanner_agent.kernel import ConfigError


def test_defaults_pipeline_a_few_compressed_batches() -> None:
    cfg = config_from_dict({}).sync
    assert cfg == SyncConfig()
    assert 1 < cfg.max_in_flight <= 4
    assert cfg.gzip
    assert 1 <= cfg.gzip_level <= 9
    assert cfg.verify_tls


@pytest.mark.parametrize(
    ("sync", "message"),
    [
        ({"max_in_flight": 0}, "sync.max_in_flight: must be from 1 to 16"),
        ({"max_in_flight": 17}, "sync.max_in_flight: must be from 1 to 16"),
        ({"gzip_level": 0}, "sync.gzip_level: must be from 1 to 9"),
        ({"gzip_level": "fast"}, "sync.gzip_level: expected an integer"),
        ({"batch_size": 50_001}, "sync.batch_size: must be <= 50000"),
        ({"write_timeout_s": 0}, "sync.write_timeout_s: must be > 0"),
        ({"token_poll_s": -1}, "sync.token_poll_s: must be > 0"),
    ],
)
def test_bad_sync_values_name_their_key(sync: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        config_from_dict({"sync": sync})
