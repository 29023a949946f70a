"""A local emulator of the 码上放心 TOP gateway (bill upload and bill status), for tests and the demo.

It checks what the real gateway checks first (known ``app_key``, signature,
``timestamp`` within ±10 minutes of its own clock, required parameters),
remembers bill numbers per ``ref_user_id`` (a second upload answers
该单据号已存在) and codes sold already, and can be told to rate-limit or fail.
Site faults, as TOP reports them (the error codes in the protocol module's
sources): its clock can run ``clock_offset_s`` off the real one (every reply
carries its clock in ``Date``, and a call whose ``timestamp`` is outside the
window gets 31 Invalid timestamp), ``ip_whitelist`` refuses other client
addresses and ``allowed_methods`` other methods (11 Insufficient ISV
Permissions with the IP whitelist or API package ``sub_code``), and an app key
taken out of ``apps`` gets 29 Invalid App Key.  The bill status query answers
under the retail (``lsyd``) and both enterprise (``kyt`` ``scqy``/``wes``) method
names alike.  Optional upload parameters are signed and stored with the bill
(``state.bills``) like the rest.  Replies have the shapes of
:mod:`scanner_agent.sinks.alihealth`.  Not emulated: sessions,
XML replies, the platform's asynchronous processing (bills go straight to
``deal_status`` 3, or 4 for the numbers in ``fail_processing``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Self
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from scanner_agent.asgi import ServerThread
from scanner_agent.sinks.alihealth import (
    API_METHODS,
    BILLSTATUS_METHODS,
    CLOCK_WINDOW_S,
    DUPLICATE_BILL_TEXT,
    GMT8,
    MAX_CODES,
    SignMethod,
    is_trace_code,
    response_key,
    sign,
)

__all__ = ["AliHealthEmulator", "EmulatorState"]

_UPLOAD_REQUIRED = (
    "bill_code",
    "bill_time",
    "bill_type",
    "physic_type",
    "ref_user_id",
    "from_user_id",
    "to_user_id",
    "client_type",
    "trace_codes",
)
_PUBLIC_REQUIRED = ("method", "app_key", "timestamp", "v", "sign_method", "sign")
_SIGN_METHODS: tuple[SignMethod, ...] = ("md5", "hmac", "hmac-sha256")


@dataclass
class EmulatorState:
    """What the emulator holds and the faults armed on it (thread-safe through ``lock``)."""

    apps: dict[str, str]
    """``app_key`` -> secret."""
    bills: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    """``(ref_user_id, bill_code)`` -> the upload's parameters."""
    sold: set[str] = field(default_factory=set)
    """Codes already sold out (a 201 bill with them again is refused)."""
    calls: list[dict[str, str]] = field(default_factory=list)
    rate_limit_next: int = 0
    """Answer the next N calls with error 7 App Call Limited."""
    fail_next: int = 0
    """Answer the next N uploads with ``msg_code`` FAIL."""
    fail_processing: dict[str, str] = field(default_factory=dict)
    """Bill number -> why: the upload is taken, but the bill status query reports
    ``deal_status`` 4 (processing failed) with that message."""
    clock_offset_s: float = 0.0
    """The gateway's clock minus the real one: it checks timestamps against, and sends in
    ``Date``, its own time (900: it runs 15 minutes ahead, so to it the caller is behind)."""
    ip_whitelist: set[str] | None = None
    """Client addresses allowed to call (None: any), as an application's IP whitelist."""
    allowed_methods: set[str] | None = None
    """Methods the application's API packages allow (None: all)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> datetime:
        """The gateway's clock."""
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset_s)


def _error(code: int, msg: str, sub_code: str = "", sub_msg: str = "") -> JSONResponse:
    body: dict[str, Any] = {"code": code, "msg": msg, "request_id": uuid.uuid4().hex[:12]}
    if sub_code:
        body["sub_code"] = sub_code
    if sub_msg:
        body["sub_msg"] = sub_msg
    return JSONResponse({"error_response": body})


def _reply(method: str, result: dict[str, Any]) -> JSONResponse:
    return JSONResponse(
        {response_key(method): {"result": result, "request_id": uuid.uuid4().hex[:12]}}
    )


def _fail(method: str, msg_code: str, info: str) -> JSONResponse:
    return _reply(method, {"response_success": False, "msg_code": msg_code, "msg_info": info})


_Asgi = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


def _dated(app: _Asgi, state: EmulatorState) -> _Asgi:
    """``app`` with a ``Date`` header from the gateway's own clock on every response."""

    async def wrapped(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        async def send_dated(message: Any) -> None:
            if message.get("type") == "http.response.start":
                date = format_datetime(state.now(), usegmt=True).encode()
                message = {**message, "headers": [*message.get("headers", []), (b"date", date)]}
            await send(message)

        await app(scope, receive, send_dated)

    return wrapped


def create_app(state: EmulatorState, *, clock_skew_s: float = CLOCK_WINDOW_S) -> _Asgi:
    """The gateway as an ASGI app (``POST /router/rest``); serve it without uvicorn's own
    ``Date`` header: it sends its clock's."""

    async def rest(request: Request) -> JSONResponse:
        # Parsed here rather than with request.form(): no python-multipart dependency.
        body = (await request.body()).decode("utf-8", "replace")
        params = dict(parse_qsl(body, keep_blank_values=True))
        with state.lock:
            state.calls.append(params)
            if state.rate_limit_next > 0:
                state.rate_limit_next -= 1
                return _error(
                    7,
                    "App Call Limited",
                    "accesscontrol.limited-by-app-api-access-count",
                    "This ban will last for 1 more seconds",
                )
        client = request.client.host if request.client else ""
        refused = _refusal(state, params, client, clock_skew_s)
        if refused is not None:
            return refused
        method = params["method"]
        if method in API_METHODS.values():
            return _upload(state, method, params)
        if method in BILLSTATUS_METHODS.values():
            return _billstatus(state, method, params)
        return _error(22, "Invalid method", "invalid-method")

    return _dated(Starlette(routes=[Route("/router/rest", rest, methods=["POST"])]), state)


def _refusal(
    state: EmulatorState, params: dict[str, str], client: str, clock_skew_s: float
) -> JSONResponse | None:
    """The gateway's own checks of a call (arguments, app key, signature, clock, permission,
    IP whitelist), before any method runs: the error it answers, or None."""
    missing = [k for k in _PUBLIC_REQUIRED if not params.get(k)]
    if missing:
        return _error(40, "Missing required arguments", f"missing-{missing[0]}")
    with state.lock:
        secret = state.apps.get(params["app_key"])
        whitelist = state.ip_whitelist
        allowed = state.allowed_methods
        now = state.now()
    if secret is None:
        return _error(29, "Invalid app Key")
    method_name = params["sign_method"]
    if method_name not in _SIGN_METHODS:
        return _error(41, "Invalid arguments", "invalid-sign-method")
    if sign(params, secret, method_name) != params["sign"].upper():
        return _error(25, "Invalid signature")
    try:
        sent = datetime.strptime(params["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=GMT8)
    except ValueError:
        return _error(31, "Invalid timestamp")
    if abs((now - sent).total_seconds()) > clock_skew_s:
        return _error(31, "Invalid timestamp")
    method = params["method"]
    if allowed is not None and method not in allowed:
        return _error(
            11,
            "Insufficient isv permissions",
            "isv.permission-api-package-limit",
            "scope ids is 0",
        )
    if whitelist is not None and client not in whitelist:
        return _error(
            11,
            "Insufficient isv permissions",
            "isv.permission-ip-whitelist-limit",
            "IP限制不允许访问",
        )
    return None


def _upload(state: EmulatorState, method: str, params: dict[str, str]) -> JSONResponse:
    missing = [k for k in _UPLOAD_REQUIRED if not params.get(k)]
    if missing:
        return _error(40, "Missing required arguments", f"missing-{missing[0]}")
    codes = params["trace_codes"].split(",")
    bad = [c for c in codes if not is_trace_code(c)]
    if bad:
        return _fail(method, "FAIL", f"追溯码格式错误: {bad[0]}")
    if len(codes) > MAX_CODES:
        return _fail(method, "FAIL", f"追溯码数量超过{MAX_CODES}")
    if params["client_type"] != "2":
        return _fail(method, "FAIL", "client_type必须为2")
    key = (params["ref_user_id"], params["bill_code"])
    with state.lock:
        if state.fail_next > 0:
            state.fail_next -= 1
            return _fail(method, "FAIL", "系统繁忙，请稍后重试")
        if key in state.bills:
            return _fail(method, "FAIL", f"{DUPLICATE_BILL_TEXT}: {params['bill_code']}")
        if params["bill_type"] == "201":
            sold = sorted(set(codes) & state.sold)
            if sold:
                return _fail(method, "FAIL", f"追溯码已销售出库: {sold[0]}")
            state.sold.update(codes)
        state.bills[key] = params
    return _reply(method, {"response_success": True, "msg_code": "SUCCESS", "model": "true"})


def _billstatus(state: EmulatorState, method: str, params: dict[str, str]) -> JSONResponse:
    # The retail and both enterprise queries take the same parameters and
    # answer the same ``result`` shape (see the protocol module's sources).
    ref = params.get("ref_ent_id", "")
    wanted = params.get("bill_code", "")
    with state.lock:
        rows = [
            {
                "bill_code": code,
                "deal_status": "4" if code in state.fail_processing else "3",
                "bill_type": p["bill_type"],
                **(
                    {"deal_msg": state.fail_processing[code]}
                    if code in state.fail_processing
                    else {}
                ),
            }
            for (owner, code), p in state.bills.items()
            if owner == ref and (not wanted or code == wanted)
        ]
    return _reply(
        method,
        {
            "response_success": True,
            "msg_code": "SUCCESS",
            "model": {"result_list": rows, "total_num": len(rows)},
        },
    )


class AliHealthEmulator:
    """The emulated gateway on loopback in a background thread.

    ::

        with AliHealthEmulator({"app1": "secret"}) as gw:
            cfg = AliHealthConfig(gateway_url=gw.url, app_key="app1", secret="secret", ...)
            gw.state.rate_limit_next = 1
    """

    def __init__(
        self,
        apps: dict[str, str],
        *,
        clock_skew: timedelta = timedelta(minutes=10),
        port: int = 0,
    ) -> None:
        """``port`` 0 takes a free one; a fixed one lets a test start the gateway late."""
        self.state = EmulatorState(apps=dict(apps))
        self._thread = ServerThread(
            create_app(self.state, clock_skew_s=clock_skew.total_seconds()),
            port=port,
            date_header=False,
        )

    @property
    def url(self) -> str:
        """The gateway URL: ``http://127.0.0.1:<port>/router/rest``."""
        return self._thread.url + "/router/rest"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.stop()
