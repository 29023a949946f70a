"""Agent configuration: a TOML file read into frozen dataclasses.

Every key has a default so ``scanner-agent run`` works with an almost empty
file, and every mistake is reported with the key's full path
(``sync.batch_size: expected an integer >= 1, got 0``) because installers
edit this file by hand on a box with no debugger.  Unknown keys are errors,
not silently ignored: a typo such as ``tokn_file`` must not leave the agent
unauthenticated without a word.

The keys ``device_id``, ``outbox.path``, ``sync.url``, ``sync.token_file`` /
``sync.token_env`` and ``[[source]]`` with ``type``/``listen``/``ack`` are a
contract that outside tools rely on; add keys freely, never rename these.

The package: the dataclasses (:mod:`._model`), reading a file into them (:mod:`._load`),
checking them (:mod:`._check`) and the warnings a valid config still earns
(:mod:`._warnings`).  Callers import from ``scanner_agent.config`` only.
"""

from __future__ import annotations

from scanner_agent.config._check import LoopbackAddress, resolve_loopback_listen, service_url
from scanner_agent.config._load import config_from_dict, load_config
from scanner_agent.config._model import (
    DEFAULT_CONFIG_PATH,
    PROTOCOLS,
    AgentConfig,
    ControlConfig,
    MetricsConfig,
    OutboxConfig,
    ScanConfig,
    SourceConfig,
    SyncConfig,
    read_credential,
)
from scanner_agent.config._warnings import config_warnings
from scanner_agent.kernel import ACTIONS, unknown_key
from scanner_agent.sinks import (
    CREDENTIAL_RULE,
    MAX_SECRET_BYTES,
    check_secret,
    read_secret_file,
    read_token,
)
from scanner_agent.sinks.alihealth import AliHealthSettings
from scanner_agent.sinks.epcis import EpcisSettings

__all__ = [
    "ACTIONS",
    "CREDENTIAL_RULE",
    "DEFAULT_CONFIG_PATH",
    "MAX_SECRET_BYTES",
    "PROTOCOLS",
    "AgentConfig",
    "AliHealthSettings",
    "ControlConfig",
    "EpcisSettings",
    "LoopbackAddress",
    "MetricsConfig",
    "OutboxConfig",
    "ScanConfig",
    "SourceConfig",
    "SyncConfig",
    "check_secret",
    "config_from_dict",
    "config_warnings",
    "load_config",
    "read_credential",
    "read_secret_file",
    "read_token",
    "resolve_loopback_listen",
    "service_url",
    "unknown_key",
]
