"""``scanner-agent doctor`` for EPCIS 2.0: the token, then an authenticated ``GET /capture``
(the capture job list, read-only), then the clock from the reply."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx

from scanner_agent.kernel import ScannerAgentError
from scanner_agent.sinks._doctor import DoctorKit, Finding
from scanner_agent.sync import build_ssl_context

if TYPE_CHECKING:
    from scanner_agent.sinks.epcis._settings import EpcisAgentSettings

__all__ = ["CHECK_NAMES", "SERVICE_CHECK", "checks"]

SERVICE_CHECK = "EPCIS repository"
CHECK_NAMES = ("token", SERVICE_CHECK, "clock")
"""The lines :func:`checks` reports (each skipped when syncing is off)."""


def checks(settings: EpcisAgentSettings, kit: DoctorKit) -> Iterator[Finding]:
    """The token, then an authenticated ``GET /capture`` (the capture job list)."""
    ep = settings.epcis
    token_check, token = kit.credential("token", ep.token_file, ep.token_env, ep.read_token)
    if token_check is not None and not token:
        yield token_check
        yield Finding(SERVICE_CHECK, "skip", "no token")
        yield Finding("clock", "skip", "no token")
        return
    try:
        verify = build_ssl_context(settings.sync)
    except ScannerAgentError as exc:
        yield Finding(SERVICE_CHECK, "fail", str(exc), "fix sync.ca_bundle / client_cert")
        return
    url = ep.url.rstrip("/")
    headers = {"Accept": "application/json", "GS1-EPCIS-Version": "2.0.0"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    no_token = Finding("token", "warn", "no token configured")
    with httpx.Client(timeout=kit.timeout_s, verify=verify, transport=kit.transport) as client:
        try:
            reply = client.get(f"{url}/capture", headers=headers)
        except httpx.HTTPError as exc:
            yield token_check or no_token
            yield Finding(
                SERVICE_CHECK,
                "fail",
                f"{url}: {type(exc).__name__}: {exc}",
                "check epcis.url, the network and firewall, and TLS (sync.ca_bundle)",
            )
            yield Finding("clock", "skip", "repository unreachable")
            return
    status = reply.status_code
    where = f"epcis.token_file ({ep.token_file})" if ep.token_file else f"${ep.token_env}"
    if status in (401, 403):
        yield Finding(
            "token",
            "fail",
            f"the repository refused the token from {where} ({status})"
            if token
            else f"the repository wants a token ({status}); none is configured",
            "get a valid token from the repository's operator, put it in epcis.token_file, "
            "then `sudo systemctl reload scanner-agent`",
        )
        yield Finding(SERVICE_CHECK, "ok", f"{url}/capture: answered {status}")
    elif status >= 500:
        yield token_check or no_token
        yield Finding(
            SERVICE_CHECK,
            "fail",
            f"{url}/capture: {status}",
            "the repository is up but failing; ask its operator",
        )
    else:
        if token_check is None:
            yield Finding(
                "token",
                "warn",
                "no token configured (epcis.token_file / token_env); the repository did not ask",
                "set one if the repository expects it",
            )
        elif status == 200:
            yield Finding("token", "ok", f"{token_check.detail}; accepted")
        else:
            yield Finding(
                "token",
                "warn",
                f"{token_check.detail}; GET /capture answered {status}, the token was not refused",
                "the repository may not list capture jobs; captures will tell",
            )
        yield Finding(SERVICE_CHECK, "ok", f"{url}/capture: {status}")
    yield kit.clock(reply.headers.get("Date"), kit.now())
