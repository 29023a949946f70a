"""码上放心 (Alibaba Health open platform): bill upload over the TOP gateway and its sync sink.

* :mod:`._settings`: the ``[alihealth]`` table and its one check;
* :mod:`._protocol`: requests, signing and replies, pure;
* :mod:`._client`: :class:`AliHealthClient`, signed calls to the gateway;
* :mod:`._ledger`: the upload plan and the platform's processing state, in ``bill_log``;
* :mod:`._sink`: :class:`AliHealthSink`, the sync loop's side (one closed bill per
  batch), and :func:`build` / :func:`names`, as every sink package has them;
* :mod:`._doctor`: ``scanner-agent doctor``'s checks of the gateway and the app secret.

Its emulator is lab code (:mod:`scanner_agent.lab.alihealth_emulator`): a daemon
syncing to 码上放心 loads no server.  See ``docs/platforms.md``.
"""

from __future__ import annotations

import typing

from scanner_agent.sinks._lazy import lazy_exports as _lazy_exports
from scanner_agent.sinks.alihealth._protocol import (
    API_METHODS,
    BILLSTATUS_METHOD,
    BILLSTATUS_METHODS,
    CLOCK_WINDOW_S,
    DUPLICATE_BILL_TEXT,
    GMT8,
    MAX_CODES,
    OPTIONAL_PARAMS,
    SIGN_METHODS,
    BillStatus,
    BillUpload,
    SignMethod,
    UploadResult,
    billstatus_method,
    billstatus_params,
    clock_problem,
    is_trace_code,
    parse_billstatus_reply,
    parse_top_error,
    parse_upload_reply,
    public_params,
    response_key,
    sign,
    signing_string,
    split_bill,
    top_timestamp,
    upload_params,
)
from scanner_agent.sinks.alihealth._settings import (
    AliHealthAgentSettings,
    AliHealthSettings,
    check_calls,
    check_settings,
)

_lazy = _lazy_exports(
    __name__,
    {
        "_client": (
            "AliHealthClient",
            "AliHealthConfig",
        ),
        "_doctor": (
            "CHECK_NAMES",
            "SERVICE_CHECK",
            "checks",
        ),
        "_ledger": (
            "STATUS_EVENT",
            "PlatformFailure",
            "acknowledge_failures",
            "append_log",
            "platform_failures",
            "status_detail",
        ),
        "_sink": (
            "AliHealthSink",
            "BillPayload",
            "alihealth_admission",
            "build",
            "names",
        ),
    },
)


def __getattr__(name: str) -> typing.Any:
    """The client, the sink and their kin bring httpx, the sync loop and the outbox: they are
    imported when first asked for, so reading this package's settings (the config does) stays
    light (:func:`scanner_agent.sinks.lazy_exports`)."""
    return _lazy(name)


__all__ = [
    "API_METHODS",
    "BILLSTATUS_METHOD",
    "BILLSTATUS_METHODS",
    "CHECK_NAMES",
    "CLOCK_WINDOW_S",
    "DUPLICATE_BILL_TEXT",
    "GMT8",
    "MAX_CODES",
    "OPTIONAL_PARAMS",
    "SERVICE_CHECK",
    "SIGN_METHODS",
    "STATUS_EVENT",
    "AliHealthAgentSettings",
    "AliHealthClient",
    "AliHealthConfig",
    "AliHealthSettings",
    "AliHealthSink",
    "BillPayload",
    "BillStatus",
    "BillUpload",
    "PlatformFailure",
    "SignMethod",
    "UploadResult",
    "acknowledge_failures",
    "alihealth_admission",
    "append_log",
    "billstatus_method",
    "billstatus_params",
    "build",
    "check_calls",
    "check_settings",
    "checks",
    "clock_problem",
    "is_trace_code",
    "names",
    "parse_billstatus_reply",
    "parse_top_error",
    "parse_upload_reply",
    "platform_failures",
    "public_params",
    "response_key",
    "sign",
    "signing_string",
    "split_bill",
    "status_detail",
    "top_timestamp",
    "upload_params",
]
