"""Reading a configuration: TOML into the dataclasses of :mod:`._model`, every key typed.

Unknown keys are errors naming the key; each value is coerced to its field's type; the
built config is then checked as a whole (:func:`._check.validate`).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from drivers.registry import COMMON_KEYS, resolve_options
from scanner_agent.config._check import validate
from scanner_agent.config._model import (
    AgentConfig,
    ControlConfig,
    MetricsConfig,
    OutboxConfig,
    ScanConfig,
    SourceConfig,
    SyncConfig,
)
from scanner_agent.kernel import ConfigError, platform_params, unknown_key
from scanner_agent.sinks.alihealth import AliHealthSettings
from scanner_agent.sinks.epcis import EpcisSettings

_T = TypeVar("_T")


def _describe(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check one TOML value against a field type; ints are accepted where floats are."""
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool):
        raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")


def _build(cls: type[_T], table: Mapping[str, Any], prefix: str) -> _T:
    """Build a flat dataclass from a TOML table, rejecting unknown keys."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{prefix.rstrip('.')}: expected a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise unknown_key(f"{prefix}{key}", known)
        tp = hints[key]
        if isinstance(tp, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        kwargs[key] = _coerce(value, tp, prefix + key)
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any]) -> AgentConfig:
    """Build and validate a config from parsed TOML (or any nested mapping).

    Raises:
        ConfigError: naming the first bad key.
    """
    top_known = {
        "device_id",
        "log_level",
        "scan",
        "outbox",
        "sync",
        "alihealth",
        "epcis",
        "control",
        "metrics",
        "source",
    }
    for key in data:
        if key not in top_known:
            raise unknown_key(str(key), top_known)
    kwargs: dict[str, Any] = {}
    if "device_id" in data:
        kwargs["device_id"] = _coerce(data["device_id"], str, "device_id")
    if "log_level" in data:
        kwargs["log_level"] = _coerce(data["log_level"], str, "log_level")
    kwargs["scan"] = _build(ScanConfig, data.get("scan", {}), "scan.")
    kwargs["outbox"] = _build(OutboxConfig, data.get("outbox", {}), "outbox.")
    kwargs["sync"] = _build(SyncConfig, data.get("sync", {}), "sync.")
    ali_table = data.get("alihealth", {})
    if isinstance(ali_table, Mapping) and "extra" in ali_table:
        extra = platform_params(ali_table["extra"], "alihealth.extra")
        ali_table = {k: v for k, v in ali_table.items() if k != "extra"}
        kwargs["alihealth"] = dataclasses.replace(
            _build(AliHealthSettings, ali_table, "alihealth."), extra=extra
        )
    else:
        kwargs["alihealth"] = _build(AliHealthSettings, ali_table, "alihealth.")
    kwargs["epcis"] = _build(EpcisSettings, data.get("epcis", {}), "epcis.")
    control_table = data.get("control", {})
    docks: tuple[str, ...] = ()
    if isinstance(control_table, Mapping) and "docks" in control_table:
        raw_docks = control_table["docks"]
        if not isinstance(raw_docks, list) or not all(isinstance(d, str) and d for d in raw_docks):
            raise ConfigError(f"control.docks: expected a list of socket paths, got {raw_docks!r}")
        docks = tuple(raw_docks)
        control_table = {k: v for k, v in control_table.items() if k != "docks"}
    kwargs["control"] = dataclasses.replace(
        _build(ControlConfig, control_table, "control."), docks=docks
    )
    kwargs["metrics"] = _build(MetricsConfig, data.get("metrics", {}), "metrics.")
    raw_sources = data.get("source", [])
    if not isinstance(raw_sources, list):
        raise ConfigError("source: expected an array of tables ([[source]])")
    sources = []
    for i, table in enumerate(raw_sources):
        where = f"source[{i}]"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table")
        if "type" not in table:
            raise ConfigError(f'{where}.type: missing (e.g. type = "tcp")')
        common = {k: table[k] for k in COMMON_KEYS if k in table}
        for k, v in common.items():
            _coerce(v, str, f"{where}.{k}")
        options = {k: v for k, v in table.items() if k not in common}
        src = SourceConfig(**common, options=options)
        resolve_options(src.type, src.options, where)  # the driver's own keys, named
        sources.append(src)
    cfg = AgentConfig(**kwargs, sources=tuple(sources))
    validate(cfg)
    return cfg


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate a TOML config file.

    Raises:
        ConfigError: the file is missing, is not TOML, or has a bad key.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Failed to read config {str(p)!r}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Failed to parse config {str(p)!r} as TOML: {exc}") from exc
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
