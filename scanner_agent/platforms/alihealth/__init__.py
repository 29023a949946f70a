"""码上放心 (Alibaba Health open platform): bill upload over the TOP gateway and its sync sink.

Its emulator is lab code (:mod:`scanner_agent.lab.alihealth_emulator`): a daemon
syncing to 码上放心 loads no server.  See ``docs/platforms.md``.
"""

from scanner_agent.platforms.alihealth._client import AliHealthClient, AliHealthConfig
from scanner_agent.platforms.alihealth._protocol import (
    API_METHODS,
    BILLSTATUS_METHOD,
    BILLSTATUS_METHODS,
    CLOCK_WINDOW_S,
    DUPLICATE_BILL_TEXT,
    GMT8,
    MAX_CODES,
    OPTIONAL_PARAMS,
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
from scanner_agent.platforms.alihealth._sink import AliHealthSink, BillPayload

__all__ = [
    "API_METHODS",
    "BILLSTATUS_METHOD",
    "BILLSTATUS_METHODS",
    "CLOCK_WINDOW_S",
    "DUPLICATE_BILL_TEXT",
    "GMT8",
    "MAX_CODES",
    "OPTIONAL_PARAMS",
    "AliHealthClient",
    "AliHealthConfig",
    "AliHealthSink",
    "BillPayload",
    "BillStatus",
    "BillUpload",
    "SignMethod",
    "UploadResult",
    "billstatus_method",
    "billstatus_params",
    "clock_problem",
    "is_trace_code",
    "parse_billstatus_reply",
    "parse_top_error",
    "parse_upload_reply",
    "public_params",
    "response_key",
    "sign",
    "signing_string",
    "split_bill",
    "top_timestamp",
    "upload_params",
]
