"""Checking a read configuration: every value against its rule, the key named first.

What a valid config still allows but an operator must hear about is :mod:`._warnings`.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from typing import NamedTuple

from scanner_agent.config._model import PROTOCOLS, AgentConfig, MetricsConfig
from scanner_agent.kernel import ACTIONS, ConfigError, parse_host_port
from scanner_agent.sinks.alihealth import check_settings as check_alihealth
from scanner_agent.sinks.epcis import check_settings as check_epcis
from scanner_agent.sinks.trace_api import check_settings as check_trace_api


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def validate(cfg: AgentConfig) -> None:
    """Check every value of a built config.

    Raises:
        ConfigError: naming the first bad key.
    """
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


def insecure_host(url: str) -> str | None:
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
    host = insecure_host(url)
    _check(
        host is None or cfg.sync.allow_insecure_http,
        key,
        f"plain http:// to {host!r}, which is not loopback: the token and every scan would "
        "cross the network unencrypted; use https://, or set sync.allow_insecure_http = true "
        "(a lab, or a link a VPN encrypts)",
    )


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
