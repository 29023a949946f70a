"""``scanner-agent doctor`` for 码上放心: the app secret file, then one signed, read-only call
(the bill status query) to the gateway, then the clock from the reply.

A refused signature or app key fails the ``app secret`` line; the gateway's
other refusals are read as the sink reads them (:func:`parse_top_error`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

import httpx

from scanner_agent.kernel import AuthError, RateLimitedError, SiteProblemError, SyncError
from scanner_agent.sinks._doctor import DoctorKit, Finding
from scanner_agent.sinks.alihealth._protocol import (
    GMT8,
    SignMethod,
    billstatus_method,
    billstatus_params,
    parse_top_error,
    public_params,
    sign,
)
from scanner_agent.sinks.alihealth._settings import AliHealthSettings
from scanner_agent.sync import date_offset_s

if TYPE_CHECKING:
    from scanner_agent.sinks.alihealth._settings import AliHealthAgentSettings

__all__ = ["CHECK_NAMES", "SERVICE_CHECK", "checks"]

SERVICE_CHECK = "码上放心 gateway"
CHECK_NAMES = ("app secret", SERVICE_CHECK, "clock")
"""The lines :func:`checks` reports (each skipped when syncing is off)."""

_GATEWAY_HINT = "alihealth.url should be the TOP gateway, https://eco.taobao.com/router/rest"


def checks(settings: AliHealthAgentSettings, kit: DoctorKit) -> Iterator[Finding]:
    """The app secret file, then one signed read-only call (bill status) to the gateway."""
    ali = settings.alihealth
    checked, secret = kit.credential("app secret", ali.app_secret_file, "", ali.read_secret)
    if checked is None or not secret:
        yield checked or Finding("app secret", "fail", "alihealth.app_secret_file: not set")
        yield Finding(SERVICE_CHECK, "skip", "no app secret to sign with")
        yield Finding("clock", "skip", "no app secret to sign with")
        return
    secret_check = checked
    now = kit.now()
    params = _status_query(ali, secret, now)
    with httpx.Client(timeout=kit.timeout_s, transport=kit.transport) as client:
        try:
            reply = client.post(ali.url, data=params)
        except httpx.HTTPError as exc:
            yield secret_check
            yield Finding(
                SERVICE_CHECK,
                "fail",
                f"{ali.url}: {type(exc).__name__}: {exc}",
                "check alihealth.url, the network and firewall",
            )
            yield Finding("clock", "skip", "gateway unreachable")
            return
    yield from _read_reply(ali, secret_check, reply, now, kit)


def _status_query(ali: AliHealthSettings, secret: str, now: datetime) -> dict[str, str]:
    """The signed parameters of a bill status query over yesterday and today (read-only)."""
    today = now.astimezone(GMT8).date()
    method = billstatus_method(ali.api, ali.status_api)
    sign_method = cast(SignMethod, ali.sign_method)
    params = public_params(method, ali.app_key, sign_method, now)
    params.update(
        billstatus_params(
            ref_ent_id=ali.ref_user_id,
            begin_date=(today - timedelta(days=1)).isoformat(),
            end_date=today.isoformat(),
        )
    )
    params["sign"] = sign(params, secret, sign_method)
    return params


def _read_reply(
    ali: AliHealthSettings,
    secret_check: Finding,
    reply: httpx.Response,
    now: datetime,
    kit: DoctorKit,
) -> Iterator[Finding]:
    """The three lines from the gateway's reply, read as the sink reads one."""
    date = reply.headers.get("Date")
    if reply.status_code != 200:
        yield secret_check
        yield Finding(SERVICE_CHECK, "fail", f"{ali.url}: HTTP {reply.status_code}", _GATEWAY_HINT)
        yield kit.clock(date, now)
        return
    try:
        data = reply.json()
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        parse_top_error(data, clock_offset_s=date_offset_s(date, now))
    except ValueError as exc:
        yield secret_check
        yield Finding(SERVICE_CHECK, "fail", f"{ali.url}: not a TOP reply ({exc})", _GATEWAY_HINT)
        yield kit.clock(date, now)
        return
    except AuthError as exc:
        yield Finding(
            "app secret",
            "fail",
            f"the gateway refused app key {ali.app_key} or the secret in "
            f"{ali.app_secret_file}: {exc}",
            "compare alihealth.app_key, the secret and alihealth.sign_method with the 码上放心 "
            "open platform's application page, then `sudo systemctl reload scanner-agent`",
        )
        yield Finding(SERVICE_CHECK, "ok", f"{ali.url}: answered (the credentials were refused)")
        yield kit.clock(date, now)
        return
    except RateLimitedError as exc:
        yield secret_check
        yield Finding(SERVICE_CHECK, "warn", str(exc), "calls are limited now; retry later")
        yield kit.clock(date, now)
        return
    except SiteProblemError as exc:
        # The site's clock, address, permissions or app key: what it says is what to fix.
        yield secret_check
        yield Finding(
            SERVICE_CHECK,
            "fail",
            f"{ali.url}: {exc}",
            "the agent holds the scans until the gateway takes its calls again",
        )
        yield kit.clock(date, now)
        return
    except SyncError as exc:
        # Answered and signed right, but refused for another reason (permission, parameters).
        yield Finding("app secret", "ok", f"{secret_check.detail}; the signature was accepted")
        yield Finding(
            SERVICE_CHECK,
            "warn",
            f"the bill status query was refused: {exc}",
            "the application may lack the bill status API; uploads will tell",
        )
        yield kit.clock(date, now)
        return
    yield Finding("app secret", "ok", f"{secret_check.detail}; the gateway accepted the signature")
    yield Finding(SERVICE_CHECK, "ok", f"{ali.url}: bill status query answered")
    yield kit.clock(date, now)
