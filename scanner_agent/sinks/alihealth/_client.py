"""A small async client for the 码上放心 TOP gateway: upload bills, poll their status."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from scanner_agent.kernel import ProtocolError
from scanner_agent.sinks.alihealth._protocol import (
    API_METHODS,
    MAX_CODES,
    Api,
    BillStatus,
    BillUpload,
    SignMethod,
    UploadResult,
    billstatus_method,
    billstatus_params,
    parse_billstatus_reply,
    parse_upload_reply,
    public_params,
    sign,
    split_bill,
    upload_params,
)
from scanner_agent.sinks.alihealth._settings import check_calls
from scanner_agent.sync import ServiceError, date_offset_s, parse_retry_after, transport_error

__all__ = ["AliHealthClient", "AliHealthConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AliHealthConfig:
    """Settings of one 码上放心 application (an ``[alihealth]`` table, once wired)."""

    app_key: str
    secret: str
    """The app secret: sent nowhere, only used to sign."""
    ref_user_id: str
    """The uploading enterprise's ``ref_ent_id`` (货主)."""
    gateway_url: str = "https://eco.taobao.com/router/rest"
    api: Api = "kyt"
    """``kyt`` (producers, distributors) or ``lsyd`` (retail pharmacies)."""
    sign_method: SignMethod = "hmac-sha256"
    oper_ic_code: str = ""
    """Who submits the bill (the platform suggests the app key)."""
    oper_ic_name: str = ""
    physic_type: int = 3
    """3 ordinary drugs, 2 special drugs."""
    max_codes: int = MAX_CODES
    timeout_s: float = 30.0
    status_api: str = ""
    """Bill status query: ``scqy``, ``wes`` or ``lsyd`` (:data:`BILLSTATUS_METHODS`);
    empty: ``scqy`` for ``kyt``, ``lsyd`` for ``lsyd``."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """Optional upload parameters for every bill (a bill's own ``extra`` wins)."""

    def __post_init__(self) -> None:
        check_calls(
            api=self.api,
            sign_method=self.sign_method,
            physic_type=self.physic_type,
            max_codes=self.max_codes,
            timeout_s=self.timeout_s,
            status_api=self.status_api,
            extra=self.extra,
        )

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"AliHealthConfig(app_key={self.app_key!r}, api={self.api!r}, gateway_url={self.gateway_url!r})"

    @property
    def method(self) -> str:
        """The bill upload method for :attr:`api`."""
        return API_METHODS[self.api]

    @property
    def status_method(self) -> str:
        """The bill status method for :attr:`status_api` (or :attr:`api`)."""
        return billstatus_method(self.api, self.status_api)


class AliHealthClient:
    """Signed form POSTs to the gateway; one :class:`httpx.AsyncClient` for its life."""

    def __init__(
        self,
        cfg: AliHealthConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cfg = cfg
        self._clock = clock
        self._client = httpx.AsyncClient(timeout=cfg.timeout_s, transport=transport)
        self.clock_offset_s: float | None = None
        """This box's clock minus the gateway's at the last reply (its ``Date``), if known:
        what a clock alarm reports (error 31 Invalid timestamp)."""

    async def aclose(self) -> None:
        """Close connections."""
        await self._client.aclose()

    def set_secret(self, secret: str) -> bool:
        """Sign with ``secret`` from the next call on; True when it differs from the one in use."""
        secret = secret.strip()
        if secret == self.cfg.secret:
            return False
        self.cfg = dataclasses.replace(self.cfg, secret=secret)
        return True

    def signed(self, method: str, business: Mapping[str, str]) -> dict[str, str]:
        """Public + business parameters of one call, with ``sign``."""
        params = public_params(method, self.cfg.app_key, self.cfg.sign_method, self._clock())
        params.update(business)
        params["sign"] = sign(params, self.cfg.secret, self.cfg.sign_method)
        return params

    async def call(self, method: str, business: Mapping[str, str]) -> dict[str, Any]:
        """One signed call; the decoded JSON reply.

        Raises:
            NetworkError: the gateway cannot be reached or timed out (the link is offline).
            ServiceError: an HTTP status other than 200 (the gateway is there but unwell).
            ProtocolError: the reply is not a JSON object.
        """
        try:
            response = await self._client.post(
                self.cfg.gateway_url,
                data=self.signed(method, business),
                headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
            )
        except httpx.HTTPError as exc:
            # The sync loop's own network error, so the link shows offline, not degraded.
            raise transport_error(exc, f"calling 码上放心 {method}") from exc
        self.clock_offset_s = date_offset_s(response.headers.get("Date"), self._clock())
        if response.status_code != 200:
            raise ServiceError(
                f"码上放心 {method}: HTTP {response.status_code}",
                status_code=response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        try:
            reply = json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"码上放心 {method}: reply is not JSON: {exc}") from exc
        if not isinstance(reply, dict):
            raise ProtocolError(f"码上放心 {method}: reply is not a JSON object")
        return reply

    async def upload_bill(self, bill: BillUpload) -> list[UploadResult]:
        """Upload ``bill`` (split into sub-bills past ``max_codes``); one verdict per call.

        Stops at the first error raised (rate limit, auth ...): sub-bills
        already accepted answer 该单据号已存在 on the retry, which counts as
        delivered, so resending the whole bill is safe.

        Raises:
            The errors of :meth:`call` and of :func:`parse_upload_reply`.
        """
        return [await self.upload_part(part) for part in split_bill(bill, self.cfg.max_codes)]

    async def upload_part(self, part: BillUpload) -> UploadResult:
        """Upload one (sub-)bill as it is, not split: at most ``max_codes`` codes.

        The site-wide :attr:`AliHealthConfig.extra` parameters go with it, the
        part's own ``extra`` taking precedence.

        Raises:
            ValueError: a code is not a trace code, or there are too many or none.
            The errors of :meth:`call` and of :func:`parse_upload_reply`.
        """
        if self.cfg.extra:
            part = dataclasses.replace(part, extra={**self.cfg.extra, **part.extra})
        business = upload_params(
            part,
            ref_user_id=self.cfg.ref_user_id,
            oper_ic_code=self.cfg.oper_ic_code or self.cfg.app_key,
            oper_ic_name=self.cfg.oper_ic_name,
            physic_type=self.cfg.physic_type,
        )
        reply = await self.call(self.cfg.method, business)
        result = parse_upload_reply(
            reply, self.cfg.method, part.bill_code, clock_offset_s=self.clock_offset_s
        )
        log.info("码上放心 bill %s: %s %s", part.bill_code, result.status, result.message)
        return result

    async def bill_status(
        self, bill_code: str, *, begin_date: str, end_date: str
    ) -> list[BillStatus]:
        """The platform's processing state of ``bill_code`` (dates ``yyyy-MM-dd``, GMT+8).

        Asks :attr:`AliHealthConfig.status_method`: the retail query for ``lsyd``, an
        enterprise one for ``kyt`` (``scqy`` unless ``status_api`` says ``wes``).
        """
        method = self.cfg.status_method
        business = billstatus_params(
            ref_ent_id=self.cfg.ref_user_id,
            begin_date=begin_date,
            end_date=end_date,
            bill_code=bill_code,
        )
        reply = await self.call(method, business)
        return parse_billstatus_reply(reply, method, clock_offset_s=self.clock_offset_s)
