"""码上放心 (Alibaba Health open platform, TOP gateway): requests, signing and replies.

Pure functions only: no I/O, no clock unless one is passed in.

Sources (public; parameter names checked against them):

* TOP protocol (public parameters, signing, ``timestamp`` in GMT+8 with a
  10-minute window, ``sign_method`` ``md5``/``hmac``/``hmac-sha256``): the
  open platform's "API调用方法详解" as reproduced in e.g.
  https://cnblogs.com/zeroone/p/6181024.html and
  https://blog.csdn.net/weixin_46124208/article/details/130508075 .
* ``alibaba.alihealth.drug.kyt.uploadinoutbill`` business parameters and reply
  fields (``response_success``, ``msg_code``, ``msg_info``, ``model``): the
  generated TOP SDK in github.com/bububa/opentaobao,
  ``model/drugtrace/AlibabaAlihealthDrugKytUploadinoutbillAPIRequest.go`` and
  ``...APIResponse.go``.
* Optional business parameters of both upload methods (``warehouse_id``,
  ``drug_id``, ``return_reason_code`` ... :data:`OPTIONAL_PARAMS`): same SDK,
  the ``r.Set("<name>", ...)`` calls of the Kyt and TopLsyd ``Uploadinoutbill``
  request files (identical sets).
* ``alibaba.alihealth.drugtrace.top.lsyd.query.billstatus`` (``ref_ent_id``,
  ``begin_date``, ``end_date``, ``bill_type`` A/AI/AO, ``bill_code``,
  ``deal_status`` 0 uploaded / 3 processed / 4 failed, ``page``,
  ``page_size``): same SDK, ``AlibabaAlihealthDrugtraceTopLsydQueryBillstatusAPIRequest.go``.
* The enterprise (``kyt``) equivalents, both "单据处理状态查询" with the same
  parameters and ``result`` (``response_success``, ``msg_code``, ``msg_info``,
  ``model`` a ``PageInfoDto`` with ``result_list``): same SDK,
  ``AlibabaAlihealthDrugKytScqySearchstatusAPIRequest.go``
  (``alibaba.alihealth.drug.kyt.scqy.searchstatus``; scqy: 生产企业, producers)
  and ``AlibabaAlihealthDrugKytWesSearchstatusAPIRequest.go``
  (``alibaba.alihealth.drug.kyt.wes.searchstatus``, which also lists a
  ``license_token`` whose meaning the SDK does not give; it is not sent).
  Which variant an application may call depends on the API package the
  enterprise holds: not confirmed against the platform, hence ``status_api``.
* Error code 7 ``App Call Limited`` (with ``sub_msg`` "This ban will last for
  N more seconds"): TOP's public error-code table.
* The rest of that table ("API platform errors", developer.alibaba.com, article
  102707, and its Chinese copies): 4-8 call limits; 10 Service Currently
  Unavailable; 11-13 insufficient ISV/user/partner permissions; 15 Remote
  Service Error; 21-23 method and format; 24-29 signature, session, app key;
  30-34 timestamp and version (31 Invalid Timestamp); 40-43 missing, invalid and
  erroneous parameters; 53 insufficient security level.  The page says that
  errors below 100 other than 15, 40 and 41 come from the call's basic checks
  (the application's authority, frequency ...), not from the data, and that a
  ``sub_code`` starting with ``isp.`` is a server fault to retry.  The IP
  whitelist refusal (11 with ``sub_code`` ``isv.permission-ip-whitelist-limit``)
  and the API package one (11 with ``isv.permission-api-package-limit`` or
  ``-not-allowed``) are as public TOP replies and a TOP-compatible gateway show
  them; not confirmed against 码上放心's gateway.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from scanner_agent.kernel import (
    PLATFORM_PARAMS,
    AuthError,
    BatchRejectedError,
    ClockSkewError,
    ProtocolError,
    RateLimitedError,
    SiteProblemError,
    TransientSyncError,
)

__all__ = [
    "API_METHODS",
    "BILLSTATUS_METHOD",
    "BILLSTATUS_METHODS",
    "CLOCK_WINDOW_S",
    "DUPLICATE_BILL_TEXT",
    "GMT8",
    "MAX_CODES",
    "OPTIONAL_PARAMS",
    "SIGN_METHODS",
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

SignMethod = Literal["md5", "hmac", "hmac-sha256"]
SIGN_METHODS: tuple[SignMethod, ...] = ("md5", "hmac", "hmac-sha256")
"""TOP's ``sign_method`` values (:func:`sign`)."""
Api = Literal["kyt", "lsyd"]

API_METHODS: dict[str, str] = {
    "kyt": "alibaba.alihealth.drug.kyt.uploadinoutbill",
    "lsyd": "alibaba.alihealth.drugtrace.top.lsyd.uploadinoutbill",
}
"""Bill upload method per ``api``: ``kyt`` for producers and distributors,
``lsyd`` for retail pharmacies (连锁药店)."""

BILLSTATUS_METHOD = "alibaba.alihealth.drugtrace.top.lsyd.query.billstatus"
"""The retail (``lsyd``) bill status query."""

BILLSTATUS_METHODS: dict[str, str] = {
    "scqy": "alibaba.alihealth.drug.kyt.scqy.searchstatus",
    "wes": "alibaba.alihealth.drug.kyt.wes.searchstatus",
    "lsyd": BILLSTATUS_METHOD,
}
"""Bill status query per ``status_api``: ``scqy`` and ``wes`` are the enterprise
(``kyt``) variants in the generated SDK, ``lsyd`` the retail one.  Which enterprise
variant a given application may call is not confirmed (module docstring)."""

OPTIONAL_PARAMS: frozenset[str] = PLATFORM_PARAMS
"""Optional business parameters of both upload methods, by the platform's names."""

MAX_CODES = 10_000
"""Most trace codes in one upload call (some integrators keep ``kyt`` at 3,500)."""

DUPLICATE_BILL_TEXT = "该单据号已存在"
"""The platform's message when a bill number was uploaded before."""

GMT8 = timezone(timedelta(hours=8), "GMT+8")

_TRACE_CODE = re.compile(r"8[0-9]{19}")  # ASCII digits only, as the cn20 scheme
_RATE_LIMIT_CODES = frozenset({4, 5, 6, 7, 8})
"""User, session, partner and app call limits, and the app's call frequency."""
_SECRET_CODES = frozenset({24, 25})
"""Missing or invalid signature: the app secret (its file is watched) or sign_method."""
_TRANSIENT_CODES = frozenset({10, 520})
"""Service currently unavailable, remote service error."""
_CLOCK_CODE = 31
"""Invalid timestamp: the call's ``timestamp`` is more than 10 minutes off the gateway's clock."""
_CALL_DATA_CODES = frozenset({15, 40, 41, 43})
"""Remote service error (the business service behind the gateway refused the data),
missing, invalid and erroneous parameters: about what was sent, i.e. the bill."""
CLOCK_WINDOW_S = 600.0
"""How far the ``timestamp`` may be off the gateway's clock (TOP: 10 minutes)."""
_BAN_SECONDS = re.compile(r"ban will last for (\d+) more seconds?", re.IGNORECASE)


def is_trace_code(code: str) -> bool:
    """True for a 码上放心 drug trace code: 20 digits starting with 8.

    >>> is_trace_code("81234567890123456789"), is_trace_code("01234567890123456789")
    (True, False)
    """
    return _TRACE_CODE.fullmatch(code) is not None


def top_timestamp(now: datetime) -> str:
    """``now`` as TOP wants it: ``yyyy-MM-dd HH:mm:ss`` in GMT+8.

    >>> from datetime import UTC
    >>> top_timestamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    '2026-01-02 11:04:05'
    """
    if now.tzinfo is None:
        raise ValueError("top_timestamp needs an aware datetime")
    return now.astimezone(GMT8).strftime("%Y-%m-%d %H:%M:%S")


def signing_string(params: Mapping[str, str]) -> str:
    """Every parameter but ``sign``, sorted by name (ASCII), as ``name+value`` pairs.

    Empty values are left out, as the official SDKs do.

    >>> signing_string({"foo": "1", "bar": "2", "foo_bar": "3", "foobar": "4", "sign": "x"})
    'bar2foo1foo_bar3foobar4'
    """
    return "".join(f"{k}{v}" for k, v in sorted(params.items()) if k != "sign" and k and v != "")


def sign(params: Mapping[str, str], secret: str, method: SignMethod) -> str:
    """The TOP signature of ``params`` (upper-case hex).

    ``md5``: MD5(secret + s + secret); ``hmac``: HMAC-MD5(secret, s);
    ``hmac-sha256``: HMAC-SHA256(secret, s); ``s`` is :func:`signing_string`.
    """
    s = signing_string(params).encode("utf-8")
    key = secret.encode("utf-8")
    if method == "md5":
        digest = hashlib.md5(key + s + key, usedforsecurity=False).hexdigest()
    elif method == "hmac":
        digest = hmac.new(key, s, hashlib.md5).hexdigest()
    elif method == "hmac-sha256":
        digest = hmac.new(key, s, hashlib.sha256).hexdigest()
    else:
        raise ValueError(f"unknown sign_method {method!r}")
    return digest.upper()


def public_params(
    method: str, app_key: str, sign_method: SignMethod, now: datetime
) -> dict[str, str]:
    """TOP's public parameters but ``sign`` (added by :func:`sign` over everything)."""
    return {
        "method": method,
        "app_key": app_key,
        "timestamp": top_timestamp(now),
        "format": "json",
        "v": "2.0",
        "sign_method": sign_method,
    }


@dataclass(frozen=True, slots=True)
class BillUpload:
    """One bill (出入库单据) as the upload call wants it."""

    bill_code: str
    """The bill number: unique per enterprise, the platform refuses it twice."""
    bill_time: datetime
    """When the bill was scanned (sent as GMT+8 ``yyyy-MM-dd HH:mm:ss``)."""
    bill_type: int
    """1xx into stock, 2xx out of stock (``scanner_agent/bills/bill_types.toml``)."""
    from_user_id: str
    """Shipping enterprise: its ``ent_id`` (not ``ref_ent_id``)."""
    to_user_id: str
    """Receiving enterprise: its ``ent_id`` (not ``ref_ent_id``)."""
    codes: tuple[str, ...]
    extra: Mapping[str, str] = field(default_factory=dict)
    """Optional business parameters as named by the platform (:data:`OPTIONAL_PARAMS`:
    ``warehouse_id``, ``drug_id``, ``return_reason_code``, ``dest_user_id`` ...).
    They are signed with the rest; they never replace a parameter set from the bill."""


def billstatus_method(api: str, status_api: str = "") -> str:
    """The bill status method to poll: ``status_api``'s, else the default for ``api``.

    >>> billstatus_method("kyt"), billstatus_method("lsyd"), billstatus_method("kyt", "wes")
    ('alibaba.alihealth.drug.kyt.scqy.searchstatus', 'alibaba.alihealth.drugtrace.top.lsyd.query.billstatus', 'alibaba.alihealth.drug.kyt.wes.searchstatus')
    """
    if status_api:
        if status_api not in BILLSTATUS_METHODS:
            raise ValueError(f"unknown status_api {status_api!r}")
        return BILLSTATUS_METHODS[status_api]
    return BILLSTATUS_METHODS["lsyd" if api == "lsyd" else "scqy"]


def split_bill(bill: BillUpload, max_codes: int = MAX_CODES) -> list[BillUpload]:
    """``bill`` in calls of at most ``max_codes`` codes, deterministically.

    Codes are de-duplicated and sorted; a bill that fits keeps its number, a
    larger one becomes ``<bill>-1``, ``<bill>-2`` ... in code order, so a retry
    of the same codes always produces the same sub-bills.
    """
    if max_codes < 1:
        raise ValueError("max_codes must be at least 1")
    codes = tuple(sorted(set(bill.codes)))
    if len(codes) <= max_codes:
        return [_replace_codes(bill, bill.bill_code, codes)]
    chunks = [codes[i : i + max_codes] for i in range(0, len(codes), max_codes)]
    return [_replace_codes(bill, f"{bill.bill_code}-{n}", c) for n, c in enumerate(chunks, 1)]


def _replace_codes(bill: BillUpload, number: str, codes: tuple[str, ...]) -> BillUpload:
    return BillUpload(
        bill_code=number,
        bill_time=bill.bill_time,
        bill_type=bill.bill_type,
        from_user_id=bill.from_user_id,
        to_user_id=bill.to_user_id,
        codes=codes,
        extra=bill.extra,
    )


def upload_params(
    bill: BillUpload,
    *,
    ref_user_id: str,
    oper_ic_code: str,
    oper_ic_name: str,
    physic_type: int = 3,
) -> dict[str, str]:
    """Business parameters of ``uploadinoutbill`` for one bill (call :func:`split_bill` first).

    Raises:
        ValueError: a code is not a 20-digit trace code starting with 8, the
            bill has more than :data:`MAX_CODES` codes or none, or ``extra``
            names a parameter that is not an optional one.
    """
    unknown = sorted(set(bill.extra) - OPTIONAL_PARAMS)
    if unknown:
        raise ValueError(
            f"bill {bill.bill_code}: not optional upload parameters: {', '.join(unknown)}"
        )
    bad = [c for c in bill.codes if not is_trace_code(c)]
    if bad:
        raise ValueError(f"bill {bill.bill_code}: not 码上放心 trace codes: {', '.join(bad[:5])}")
    if not bill.codes or len(bill.codes) > MAX_CODES:
        raise ValueError(f"bill {bill.bill_code}: {len(bill.codes)} codes (1-{MAX_CODES} allowed)")
    params = {
        "bill_code": bill.bill_code,
        "bill_time": top_timestamp(bill.bill_time),
        "bill_type": str(bill.bill_type),
        "physic_type": str(physic_type),
        "ref_user_id": ref_user_id,
        "from_user_id": bill.from_user_id,
        "to_user_id": bill.to_user_id,
        "oper_ic_code": oper_ic_code,
        "oper_ic_name": oper_ic_name,
        "client_type": "2",
        "trace_codes": ",".join(bill.codes),
    }
    for key, value in bill.extra.items():
        params.setdefault(key, value)
    return params


def billstatus_params(
    *,
    ref_ent_id: str,
    begin_date: str,
    end_date: str,
    bill_code: str = "",
    bill_type: str = "A",
    page: int = 1,
    page_size: int = 50,
) -> dict[str, str]:
    """Business parameters of :data:`BILLSTATUS_METHOD` (dates ``yyyy-MM-dd``)."""
    params = {
        "ref_ent_id": ref_ent_id,
        "begin_date": begin_date,
        "end_date": end_date,
        "bill_type": bill_type,
        "page": str(page),
        "page_size": str(page_size),
    }
    if bill_code:
        params["bill_code"] = bill_code
    return params


def response_key(method: str) -> str:
    """The reply's top-level key for ``method``.

    >>> response_key("alibaba.alihealth.drug.kyt.uploadinoutbill")
    'alibaba_alihealth_drug_kyt_uploadinoutbill_response'
    """
    return method.replace(".", "_") + "_response"


def parse_top_error(reply: Mapping[str, Any], *, clock_offset_s: float | None = None) -> None:
    """Raise the agent's error for a TOP ``error_response``; return when there is none.

    Only what is about the call's data refuses it (the bill); what is about
    this site (its clock, application, permissions, address) holds the bill
    with an alarm until it is fixed.  ``clock_offset_s`` is this box's clock
    minus the gateway's, measured from the reply (:func:`~scanner_agent.sync.date_offset_s`),
    for the clock alarm.

    Raises:
        RateLimitedError: codes 4-8, call limits (``retry_after`` from the ban text).
        AuthError: a missing or invalid signature (the app secret).
        ClockSkewError: 31 Invalid timestamp: this box's clock is off.
        SiteProblemError: another error TOP documents as the caller's (below 100 but
            15, 40, 41, 43): permissions, IP whitelist, app key, session, method ...
        TransientSyncError: the gateway or the service behind it is unavailable.
        BatchRejectedError: an error about the call's data (15, 40, 41, 43, 100 and up).
    """
    err = reply.get("error_response")
    if err is None:
        return
    if not isinstance(err, Mapping):
        raise ProtocolError("码上放心: error_response is not an object")
    try:
        code = int(err.get("code", -1))
    except (TypeError, ValueError):
        code = -1
    sub_code = str(err.get("sub_code") or "")
    text = " ".join(
        str(x) for x in (code, err.get("msg"), sub_code, err.get("sub_msg")) if x not in (None, "")
    )
    if code in _RATE_LIMIT_CODES or "limited" in sub_code:
        match = _BAN_SECONDS.search(str(err.get("sub_msg") or ""))
        raise RateLimitedError(
            f"码上放心 rate limit: {text}", retry_after=float(match[1]) if match else None
        )
    if code in _SECRET_CODES:
        raise AuthError(f"码上放心 refused the credentials: {text}")
    if code in _TRANSIENT_CODES or sub_code.startswith("isp."):
        raise TransientSyncError(f"码上放心 unavailable: {text}")
    if code == _CLOCK_CODE:
        raise ClockSkewError(clock_problem(clock_offset_s, text), offset_s=clock_offset_s)
    if 0 <= code < 100 and code not in _CALL_DATA_CODES:
        raise SiteProblemError(f"refused this site's call ({text}): {_site_hint(code, sub_code)}")
    raise BatchRejectedError(f"码上放心 refused the call: {text}", status_code=200)


def clock_problem(offset_s: float | None, text: str = "31 Invalid timestamp") -> str:
    """The clock alarm: how far off this box's clock is, and what to do.

    >>> clock_problem(-903.4)
    "the box's clock is 15 min 3 s behind the 码上放心 gateway's (by its HTTP Date); it takes calls only within 10 minutes of its own time (31 Invalid timestamp): set the clock, e.g. turn on time sync with `sudo timedatectl set-ntp true`"
    """
    if offset_s is None:
        measured = (
            "the box's clock is more than 10 minutes off the 码上放心 gateway's "
            "(its reply had no Date to measure by)"
        )
    else:
        ahead = "ahead of" if offset_s > 0 else "behind"
        measured = (
            f"the box's clock is {_duration(abs(offset_s))} {ahead} the 码上放心 gateway's "
            "(by its HTTP Date)"
        )
    return (
        f"{measured}; it takes calls only within {CLOCK_WINDOW_S / 60:.0f} minutes of its own "
        f"time ({text}): set the clock, e.g. turn on time sync with "
        "`sudo timedatectl set-ntp true`"
    )


def _duration(seconds: float) -> str:
    """``903`` -> ``15 min 3 s``; ``7200`` -> ``2 h 0 min``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _site_hint(code: int, sub_code: str) -> str:
    """What the operator does about a caller error ``code`` (see the module's sources)."""
    if code in (11, 12, 13) and "whitelist" in sub_code.lower():
        return (
            "add this site's public IP address to the application's IP whitelist on the "
            "码上放心 open platform"
        )
    if code in (11, 12, 13):
        return (
            "the application lacks the permission (its API package) for this call: apply "
            "for it on the 码上放心 open platform"
        )
    if code in (28, 29):
        return (
            "the gateway does not know this app key: check alihealth.app_key against the "
            "application on the 码上放心 open platform (a restart applies a new key)"
        )
    if code in (26, 27):
        return "the call needs a valid authorised session for this application"
    if code == 53:
        return "raise the application's security level or refresh its authorisation"
    return "check the agent's [alihealth] settings against the 码上放心 open platform"


def _result(
    reply: Mapping[str, Any], method: str, clock_offset_s: float | None = None
) -> Mapping[str, Any]:
    parse_top_error(reply, clock_offset_s=clock_offset_s)
    body = reply.get(response_key(method))
    if not isinstance(body, Mapping):
        raise ProtocolError(f"码上放心: reply has no {response_key(method)!r} object")
    inner = body.get("result")
    return inner if isinstance(inner, Mapping) else body


def _truthy(value: object) -> bool:
    return value is True or str(value).lower() == "true"


@dataclass(frozen=True, slots=True)
class UploadResult:
    """The platform's verdict on one uploaded (sub-)bill."""

    bill_code: str
    status: Literal["accepted", "duplicate", "rejected"]
    """``accepted`` and ``duplicate`` (bill number known: our own earlier upload) are delivered."""
    msg_code: str
    message: str


def parse_upload_reply(
    reply: Mapping[str, Any],
    method: str,
    bill_code: str,
    *,
    clock_offset_s: float | None = None,
) -> UploadResult:
    """The verdict of an ``uploadinoutbill`` reply (JSON already decoded).

    Raises:
        The errors of :func:`parse_top_error`, and ProtocolError for a reply
        of the wrong shape.
    """
    result = _result(reply, method, clock_offset_s)
    msg_code = str(result.get("msg_code") or "")
    message = str(result.get("msg_info") or "")
    if _truthy(result.get("response_success")) and msg_code.upper() in ("SUCCESS", ""):
        return UploadResult(bill_code, "accepted", msg_code or "SUCCESS", message)
    if DUPLICATE_BILL_TEXT in message:
        return UploadResult(bill_code, "duplicate", msg_code, message)
    if not msg_code and not message and "response_success" not in result:
        raise ProtocolError(f"码上放心: reply for bill {bill_code} has no result fields")
    return UploadResult(bill_code, "rejected", msg_code or "FAIL", message or "refused")


@dataclass(frozen=True, slots=True)
class BillStatus:
    """One bill's processing state on the platform."""

    bill_code: str
    deal_status: str
    """``0`` uploaded, ``3`` processed, ``4`` failed."""
    message: str = ""

    @property
    def done(self) -> bool:
        """Processed successfully (``deal_status`` 3)."""
        return self.deal_status == "3"

    @property
    def failed(self) -> bool:
        """Processing failed (``deal_status`` 4)."""
        return self.deal_status == "4"


def _rows(model: object) -> Iterable[Mapping[str, Any]]:
    """Bill rows from the reply's ``model``: a list, or a TOP-style ``{"<x>_dto": [...]}`` wrapper."""
    if isinstance(model, Mapping):
        for key in ("result_list", "bill_list", "list", "data"):
            if key in model:
                return _rows(model[key])
        lists = [v for v in model.values() if isinstance(v, list | Mapping)]
        if "bill_code" in model:
            return [model]
        return [row for v in lists for row in _rows(v)]
    if isinstance(model, Sequence) and not isinstance(model, str):
        return [row for row in model if isinstance(row, Mapping)]
    return []


def parse_billstatus_reply(
    reply: Mapping[str, Any],
    method: str = BILLSTATUS_METHOD,
    *,
    clock_offset_s: float | None = None,
) -> list[BillStatus]:
    """Bill states from a reply to ``method`` (one of :data:`BILLSTATUS_METHODS`).

    The SDK documents ``result`` with ``response_success``/``msg_code``/``model``;
    the row list's name inside ``model`` is not public for ``lsyd``, so common TOP
    wrappers are accepted.

    Raises:
        The errors of :func:`parse_top_error`; ProtocolError when the query failed.
    """
    result = _result(reply, method, clock_offset_s)
    if "response_success" in result and not _truthy(result["response_success"]):
        raise ProtocolError(
            f"码上放心 bill status query failed: {result.get('msg_code')} {result.get('msg_info')}"
        )
    return [
        BillStatus(
            bill_code=str(row.get("bill_code", "")),
            deal_status=str(row.get("deal_status", "")),
            message=str(row.get("deal_msg") or row.get("msg_info") or ""),
        )
        for row in _rows(result.get("model"))
    ]
