"""``scanner-agent doctor`` for Trace API v1: ``GET /v1/health``, then the token on an
authenticated ``GET /v1/events?limit=1`` (read-only), then the clock from the reply."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx

from scanner_agent.kernel import ScannerAgentError
from scanner_agent.sinks._doctor import DoctorKit, Finding
from scanner_agent.sync import build_ssl_context

if TYPE_CHECKING:
    from scanner_agent.sinks.trace_api._settings import TraceApiAgentSettings

__all__ = ["CHECK_NAMES", "SERVICE_CHECK", "checks"]

SERVICE_CHECK = "trace service"
CHECK_NAMES = (SERVICE_CHECK, "token", "clock")
"""The lines :func:`checks` reports, in order (each skipped when syncing is off)."""


def checks(settings: TraceApiAgentSettings, kit: DoctorKit) -> Iterator[Finding]:
    """The token file, the service's health, the token, the clock."""
    sc = settings.sync
    token_check, token = kit.credential("token", sc.token_file, sc.token_env, sc.read_token)
    if token_check is not None and not token:
        yield token_check
        return
    try:
        verify = build_ssl_context(sc)
    except ScannerAgentError as exc:
        yield Finding(
            SERVICE_CHECK,
            "fail",
            str(exc),
            "fix sync.ca_bundle, sync.client_cert and sync.client_key (PEM files)",
        )
        return
    url = sc.url.rstrip("/")
    with httpx.Client(
        base_url=url, timeout=kit.timeout_s, verify=verify, transport=kit.transport
    ) as client:
        try:
            health = client.get("/v1/health")
        except httpx.HTTPError as exc:
            yield Finding(
                SERVICE_CHECK,
                "fail",
                f"{url}: {type(exc).__name__}: {exc}",
                "check sync.url, the network and firewall, and TLS (sync.ca_bundle)",
            )
            yield Finding("token", "skip", "service unreachable")
            yield Finding("clock", "skip", "service unreachable")
            return
        if health.status_code == 200:
            yield Finding(SERVICE_CHECK, "ok", f"{url}/v1/health: 200")
        else:
            yield Finding(
                SERVICE_CHECK,
                "fail",
                f"{url}/v1/health: {health.status_code}",
                "the service is up but unhealthy, or sync.url points at something else",
            )
        yield _token_check(client, token, settings)
    yield kit.clock(health.headers.get("Date"), kit.now())


def _token_check(client: httpx.Client, token: str, settings: TraceApiAgentSettings) -> Finding:
    if not token:
        return Finding(
            "token",
            "fail",
            "no token configured (sync.token_file / sync.token_env)",
            "put the token in /etc/scanner-agent/token (mode 0640, group scanner-agent) "
            "and set sync.token_file",
        )
    try:
        reply = client.get(
            "/v1/events", params={"limit": 1}, headers={"Authorization": f"Bearer {token}"}
        )
    except httpx.HTTPError as exc:
        return Finding("token", "fail", f"{type(exc).__name__}: {exc}", "retry; check the link")
    where = settings.sync.token_file or f"${settings.sync.token_env}"
    if reply.status_code in (401, 403):
        return Finding(
            "token",
            "fail",
            f"the service refused the token from {where} ({reply.status_code})",
            "get a valid token for this device from the trace service's operator, "
            "then `sudo systemctl reload scanner-agent`",
        )
    if reply.status_code >= 400:
        return Finding(
            "token",
            "warn",
            f"GET /v1/events answered {reply.status_code}; the token was not refused",
            "the service may not offer /v1/events; batches will tell",
        )
    return Finding("token", "ok", f"accepted (token from {where})")
