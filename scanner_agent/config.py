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
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import tomllib
import types
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from drivers.registry import COMMON_KEYS, resolve_options
from scanner_agent.kernel import (
    ACTIONS,
    ConfigError,
    parse_host_port,
    platform_params,
    unknown_key,
)
from scanner_agent.sinks import (
    CREDENTIAL_RULE,
    MAX_SECRET_BYTES,
    SINK_PACKAGES,
    check_secret,
    read_secret_file,
    read_token,
)
from scanner_agent.sinks.alihealth import AliHealthSettings
from scanner_agent.sinks.alihealth import check_settings as check_alihealth
from scanner_agent.sinks.epcis import EpcisSettings
from scanner_agent.sinks.epcis import check_settings as check_epcis
from scanner_agent.sinks.trace_api import check_settings as check_trace_api

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

DEFAULT_CONFIG_PATH = Path("/etc/scanner-agent/agent.toml")

PROTOCOLS: tuple[str, ...] = tuple(SINK_PACKAGES)
"""What the sync loop speaks (``sync.protocol``): our Trace API v1, 码上放心 bill upload, EPCIS 2.0
(:data:`scanner_agent.sinks.SINK_PACKAGES`: one sink package each)."""


@dataclass(frozen=True, slots=True)
class ScanConfig:
    """How accepted scans are labelled and filtered."""

    action: str = "ship"
    """Default movement for scans whose source does not set one."""
    bill: str = ""
    """Default bill number; empty means ``<device_id>-<action>`` (a bill per device and action)."""
    reject_duplicates: bool = True
    """Refuse a code already queued for the same bill and action (bad read, ``duplicate scan``)."""


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """The local SQLite outbox."""

    path: str = "/var/lib/scanner-agent/outbox.db"
    """SQLite file holding every accepted scan until the service confirms it."""
    commit_interval_ms: float = 0.0
    """Extra wait for more scans to share a group commit.  0 (bench/ingest.py): commit as
    soon as the writer is free; scans arriving meanwhile form the next group by themselves,
    so groups still grow with the load (p99 ack at 2,000 scans/s: 2.8-3.1 ms at 0, 6.2-7.6 ms
    at 2 ms)."""
    commit_max_rows: int = 1024
    """Group commit size cap: a transaction never holds more scans than this (bench/ingest.py,
    a flood from 8 sources: 1,024 and 2,048 both 163-174k scans/s, 512 122-128k; the smaller
    cap keeps each transaction shorter.  At ordinary rates groups are small anyway)."""
    min_free_mb: int = 64
    """Free-space reserve: below it new scans are refused with ``outbox full``."""
    retention_days: float = 30.0
    """How long delivered rows are kept for audit and lookup before pruning."""
    rejects_retention_days: float = 30.0
    """How long refused-scan records (aggregates: count, first and last time, one sample per
    hour, source, device and kind of reason) are kept after their last refusal."""
    rejects_max_rows: int = 100_000
    """Cap on refused-scan records; the oldest go first.  Refusals are also not recorded while
    free space is below twice ``min_free_mb``, so they never eat into the reserve."""


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """Delivery to the trace service (Trace API v1), or to the platform ``protocol`` names."""

    protocol: str = "trace-api"
    """``trace-api`` (``url``, ``token_file``), ``alihealth`` (the ``[alihealth]`` table) or
    ``epcis`` (the ``[epcis]`` table).  Batching, retry and backoff keys apply to all three."""
    url: str = "http://127.0.0.1:8900"
    """Base URL of the trace service."""
    token_file: str = ""
    """File holding the bearer token (mode 0640 or 0600: one every user may read is refused)."""
    token_env: str = ""
    """Name of an environment variable holding the token, when no file is used."""
    enabled: bool = True
    """Turn syncing off (scans still queue) for a site with no link yet."""
    batch_size: int = 2500
    """Most scans sent in one request (bench/sync.py: 2,000-5,000 drain alike; smaller
    batches hold the outbox thread, and so scan acknowledgements, for less time)."""
    batch_bytes: int = 2 * 1024 * 1024
    """Most uncompressed bytes of event JSON in one request (the events array; at least one event)."""
    gzip: bool = True
    """Compress request bodies."""
    gzip_level: int = 1
    """gzip level 1-9: 1 already shrinks a batch about tenfold at a fraction of the CPU of 6."""
    max_in_flight: int = 3
    """Most batches awaiting a reply at once while a backlog drains (1 = strictly one at a time)."""
    idle_poll_s: float = 1.0
    """How often an idle sync loop looks for work it was not told about."""
    connect_timeout_s: float = 5.0
    """TCP/TLS connect timeout."""
    read_timeout_s: float = 30.0
    """Timeout waiting for the service's reply."""
    write_timeout_s: float = 30.0
    """Timeout sending a request body (a slow uplink needs more)."""
    backoff_initial_s: float = 0.5
    """First retry delay after a failure; doubles each time (full jitter)."""
    backoff_max_s: float = 60.0
    """Longest retry delay."""
    lease_s: float = 60.0
    """How long a batch stays leased to a sender before it may be reclaimed."""
    token_poll_s: float = 5.0
    """While the token is refused, how often the token file or variable is read again."""
    verify_tls: bool = True
    """Verify the service's certificate (never turn off outside a lab)."""
    allow_insecure_http: bool = False
    """Allow a plain ``http://`` service URL (``url``, ``epcis.url`` or ``alihealth.url``,
    whichever ``protocol`` uses) to a host that is not loopback.  The token and every scan
    then cross the network unencrypted, so such a URL is refused unless this is true, and
    even then each start warns (a lab, or a link encrypted by a VPN)."""
    ca_bundle: str = ""
    """PEM file of CA certificates to trust instead of the system store."""
    client_cert: str = ""
    """PEM client certificate for mutual TLS."""
    client_key: str = ""
    """PEM private key for ``client_cert``."""

    def read_token(self) -> str:
        """The bearer token, from ``token_file`` or ``token_env``; empty when neither is set.

        Raises:
            ConfigError: the file or variable cannot be read or breaks :data:`CREDENTIAL_RULE`,
                or the file is readable by every user (:func:`read_secret_file`).
        """
        return read_token(self.token_file, self.token_env, "sync")


def read_credential(cfg: AgentConfig) -> str:
    """What the sink for ``cfg.sync.protocol`` authenticates with (the daemon, its reload,
    ``check-config`` and ``doctor`` read it here, so one rule refuses a bad one everywhere).

    Raises:
        ConfigError: the file or variable cannot be read or is refused.
    """
    if cfg.sync.protocol == "alihealth":
        return cfg.alihealth.read_secret()
    if cfg.sync.protocol == "epcis":
        return cfg.epcis.read_token()
    return cfg.sync.read_token()


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """The local control interface (``docs/control.md``): CLI and TUI talk to the daemon here."""

    socket: str = "/run/scanner-agent/control.sock"
    """UNIX socket path; empty turns the interface off."""
    group: str = ""
    """Group owning the socket (e.g. the dispatch clerks'); empty keeps the daemon's."""
    mode: str = "0660"
    """Socket permissions, octal; a mode that lets every user write (``0666``, ``777``) is
    refused: connecting needs write permission, and the socket can open and close bills."""
    max_clients: int = 16
    """Connections served at once; one more gets an ``unavailable`` reply and is closed."""
    max_line_bytes: int = 1024 * 1024
    """Longest request line (a CSV import travels in one); longer gets one error, then close."""
    max_backlog_bytes: int = 1024 * 1024
    """Unsent reply and event bytes one client may leave before it is disconnected."""
    request_timeout_s: float = 30.0
    """A request line, once started, must end within this; idle connections may stay."""
    docks: tuple[str, ...] = ()
    """Control sockets ``scanner-agent tui`` attaches to at once (one clerk, several docks: the
    docks overview); a remote dock's socket is forwarded over SSH.  Empty: ``socket`` alone."""

    @property
    def mode_bits(self) -> int:
        """``mode`` as a number."""
        return int(self.mode, 8)


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """The optional Prometheus endpoint (``docs/operations.md``)."""

    listen: str = ""
    """``host:port`` on loopback for ``GET /metrics``, e.g. ``127.0.0.1:9464``; empty turns it off.
    The host is resolved when the config loads and again where the endpoint binds (which
    binds the address it checked, not the name); every address it names must be loopback
    (the endpoint has no authentication)."""


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One ``[[source]]`` table: a scanner input.

    ``options`` holds the type-specific keys (``listen``, ``ack``, ``path``,
    ``port``...), validated by the driver for ``type`` when the config loads.
    """

    type: str
    """Driver name: ``tcp``, ``replay`` (file or stdin), and later hardware drivers."""
    name: str = ""
    """A label for logs and status; defaults to ``<type>:<main option>``."""
    action: str = ""
    """Movement for this source's scans; empty means ``scan.action``."""
    bill: str = ""
    """Bill for this source's scans; empty means the current/default bill."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """The driver's own keys, as written."""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The whole agent configuration."""

    device_id: str = "scanner-agent"
    """This agent's identity towards the trace service (one per box or dock)."""
    scan: ScanConfig = field(default_factory=ScanConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    alihealth: AliHealthSettings = field(default_factory=AliHealthSettings)
    epcis: EpcisSettings = field(default_factory=EpcisSettings)
    control: ControlConfig = field(default_factory=ControlConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    sources: tuple[SourceConfig, ...] = ()
    """Scanner inputs, in file order."""
    log_level: str = "info"
    """``debug``, ``info``, ``warning`` or ``error``."""

    def default_bill(self, action: str) -> str:
        """The bill a scan goes to when neither its source nor an open bill names one."""
        return self.scan.bill or f"{self.device_id}-{action}"


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


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _validate(cfg: AgentConfig) -> None:
    _check(bool(cfg.device_id.strip()), "device_id", "must not be empty")
    _check(cfg.scan.action in ACTIONS, "scan.action", f"expected one of {', '.join(ACTIONS)}")
    _check(bool(cfg.outbox.path), "outbox.path", "must not be empty")
    _check(cfg.outbox.commit_interval_ms >= 0, "outbox.commit_interval_ms", "must be >= 0")
    _check(cfg.outbox.commit_max_rows >= 1, "outbox.commit_max_rows", "must be >= 1")
    _check(cfg.outbox.min_free_mb >= 0, "outbox.min_free_mb", "must be >= 0")
    _check(cfg.outbox.retention_days >= 0, "outbox.retention_days", "must be >= 0")
    _check(cfg.outbox.rejects_retention_days >= 0, "outbox.rejects_retention_days", "must be >= 0")
    _check(cfg.outbox.rejects_max_rows >= 1, "outbox.rejects_max_rows", "must be >= 1")
    sync = cfg.sync
    check_trace_api(sync)  # url, token_file / token_env, the batch limit, gzip_level
    _check(sync.batch_size >= 1, "sync.batch_size", "must be >= 1")
    _check(sync.batch_bytes >= 1024, "sync.batch_bytes", "must be >= 1024")
    _check(1 <= sync.max_in_flight <= 16, "sync.max_in_flight", "must be from 1 to 16")
    for name in (
        "idle_poll_s",
        "connect_timeout_s",
        "read_timeout_s",
        "write_timeout_s",
        "backoff_initial_s",
        "token_poll_s",
    ):
        _check(getattr(sync, name) > 0, f"sync.{name}", "must be > 0")
    _check(
        sync.backoff_max_s >= sync.backoff_initial_s,
        "sync.backoff_max_s",
        "must be >= backoff_initial_s",
    )
    _check(sync.lease_s > 0, "sync.lease_s", "must be > 0")
    mode = cfg.control.mode
    _check(
        len(mode) <= 4
        and mode.isascii()
        and mode.isdigit()
        and "8" not in mode
        and "9" not in mode,
        "control.mode",
        f"expected an octal mode such as 0660, got {mode!r}",
    )
    _check(
        not cfg.control.mode_bits & 0o002,
        "control.mode",
        f"{mode!r} lets every user on the box write to the socket (open and close bills, "
        "remove scans); use 0660 with control.group, or 0600",
    )
    for key, low in (("max_clients", 1), ("max_line_bytes", 1024), ("max_backlog_bytes", 1024)):
        _check(getattr(cfg.control, key) >= low, f"control.{key}", f"must be >= {low}")
    _check(cfg.control.request_timeout_s > 0, "control.request_timeout_s", "must be > 0")
    _check(
        bool(sync.client_cert) == bool(sync.client_key),
        "sync.client_key",
        "client_cert and client_key must be set together",
    )
    _check_metrics(cfg.metrics)
    _check_platforms(cfg)
    _check_insecure_http(cfg)
    _check(
        cfg.log_level in ("debug", "info", "warning", "error"),
        "log_level",
        "expected debug, info, warning or error",
    )
    for i, src in enumerate(cfg.sources):
        if src.action:
            _check(
                src.action in ACTIONS,
                f"source[{i}].action",
                f"expected one of {', '.join(ACTIONS)}",
            )


def _check_platforms(cfg: AgentConfig) -> None:
    """``sync.protocol`` and the tables of the platforms, each checked by its sink package's
    own rules; the chosen one must be complete."""
    protocol = cfg.sync.protocol
    _check(protocol in PROTOCOLS, "sync.protocol", f"expected one of {', '.join(PROTOCOLS)}")
    check_alihealth(cfg.alihealth, chosen=protocol == "alihealth")
    check_epcis(cfg.epcis, chosen=protocol == "epcis")


def service_url(cfg: AgentConfig) -> tuple[str, str]:
    """``(key, url)`` of the service ``sync.protocol`` sends to (``sync.url`` for trace-api)."""
    if cfg.sync.protocol == "alihealth":
        return "alihealth.url", cfg.alihealth.url
    if cfg.sync.protocol == "epcis":
        return "epcis.url", cfg.epcis.url
    return "sync.url", cfg.sync.url


def _insecure_host(url: str) -> str | None:
    """The host of a plain ``http://`` URL whose host is not loopback, else None.

    Only an IP literal in 127.0.0.0/8 or ::1, or ``localhost`` (RFC 6761: always
    loopback), counts as loopback: a name is not resolved here, since what it resolves
    to on the day of the check says nothing about where requests go later.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "http":
        return None
    host = (parts.hostname or "").lower()
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return host or url


def _check_insecure_http(cfg: AgentConfig) -> None:
    key, url = service_url(cfg)
    host = _insecure_host(url)
    _check(
        host is None or cfg.sync.allow_insecure_http,
        key,
        f"plain http:// to {host!r}, which is not loopback: the token and every scan would "
        "cross the network unencrypted; use https://, or set sync.allow_insecure_http = true "
        "(a lab, or a link a VPN encrypts)",
    )


def config_warnings(cfg: AgentConfig) -> list[str]:
    """What a valid config allows but an operator should hear about at every start."""
    out: list[str] = []
    key, url = service_url(cfg)
    host = _insecure_host(url)
    if host is not None:
        out.append(
            f"{key}: plain http:// to {host!r}, allowed by sync.allow_insecure_http: "
            "the token and every scan cross the network unencrypted"
        )
    if not cfg.sync.verify_tls:
        out.append(
            "sync.verify_tls = false: the service's certificate is not checked, so anyone "
            "on the path can pose as it"
        )
    return out


def _check_metrics(metrics: MetricsConfig) -> None:
    """``metrics.listen``: ``host:port`` whose host resolves to loopback addresses only."""
    if metrics.listen:
        resolve_loopback_listen(metrics.listen)


class LoopbackAddress(NamedTuple):
    """Where to bind a loopback-only listener: an address literal, never a name."""

    host: str
    port: int
    family: socket.AddressFamily


def resolve_loopback_listen(listen: str, key: str = "metrics.listen") -> LoopbackAddress:
    """``host:port`` whose host resolves to loopback addresses only: the first of them.

    Resolved (getaddrinfo), not matched as text: ``127.0.0.1.example.net`` starts
    like loopback and may be anything, ``localhost`` is loopback though it does not.
    The config check and the server's bind both call this, and the server binds the
    address returned, so what is bound is what was checked (a name is not resolved
    again by the bind).

    Raises:
        ConfigError: naming ``key``: not ``host:port``, unresolvable, or an address
            that is not loopback.
    """
    host, port = parse_host_port(listen, key, default_host="", example="127.0.0.1:9464")
    loopback = "a loopback address (the endpoint has no authentication)"
    _check(bool(host), key, f"expected {loopback}, got every interface")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"{key}: cannot resolve {host!r}: {exc}") from None
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        named = host if host == str(address) else f"{host} (resolves to {address})"
        _check(address.is_loopback, key, f"expected {loopback}, got {named}")
    family, *_, sockaddr = found[0]
    return LoopbackAddress(str(sockaddr[0]), int(port), family)


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
    _validate(cfg)
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
