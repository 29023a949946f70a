"""The 码上放心 client against the emulated gateway on loopback (real HTTP)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from scanner_agent.kernel import (
    AuthError,
    ClockSkewError,
    ConfigError,
    RateLimitedError,
    SiteProblemError,
)
from scanner_agent.lab.alihealth_emulator import AliHealthEmulator
from scanner_agent.sinks.alihealth import (
    AliHealthClient,
    AliHealthConfig,
    BillUpload,
    sign,
    upload_params,
)


@pytest.fixture(scope="module")
def gateway() -> Iterator[AliHealthEmulator]:
    with AliHealthEmulator({"app1": "s3cret"}) as gw:
        yield gw


def _cfg(gw: AliHealthEmulator, **kw: object) -> AliHealthConfig:
    base: dict[str, object] = {
        "app_key": "app1",
        "secret": "s3cret",
        "ref_user_id": "ref-1",
        "gateway_url": gw.url,
    }
    base.update(kw)
    return AliHealthConfig(**base)  # type: ignore[arg-type]


def _bill(number: str, n: int, start: int = 0, bill_type: int = 102) -> BillUpload:
    return BillUpload(
        bill_code=number,
        bill_time=datetime.now(UTC),
        bill_type=bill_type,
        from_user_id="ent-a",
        to_user_id="ent-b",
        codes=tuple(f"8{i:019d}" for i in range(start, start + n)),
    )


@pytest.mark.parametrize("sign_method", ["md5", "hmac", "hmac-sha256"])
async def test_upload_is_accepted_then_known(gateway: AliHealthEmulator, sign_method: str) -> None:
    client = AliHealthClient(_cfg(gateway, sign_method=sign_method))
    try:
        number = f"IN-{sign_method}"
        (first,) = await client.upload_bill(_bill(number, 3))
        (again,) = await client.upload_bill(_bill(number, 3))
        statuses = await client.bill_status(number, begin_date="2026-01-01", end_date="2026-12-31")
    finally:
        await client.aclose()
    assert first.status == "accepted"
    assert again.status == "duplicate"
    assert "该单据号已存在" in again.message
    assert [s.bill_code for s in statuses] == [number]
    assert statuses[0].done
    stored = gateway.state.bills[("ref-1", number)]
    assert stored["client_type"] == "2"
    assert stored["sign_method"] == sign_method


async def test_lsyd_uses_the_retail_method(gateway: AliHealthEmulator) -> None:
    client = AliHealthClient(_cfg(gateway, api="lsyd"))
    try:
        (r,) = await client.upload_bill(_bill("LS-1", 1, start=500))
    finally:
        await client.aclose()
    assert r.status == "accepted"
    assert (
        gateway.state.calls[-1]["method"] == "alibaba.alihealth.drugtrace.top.lsyd.uploadinoutbill"
    )


async def test_large_bill_goes_in_numbered_sub_bills(gateway: AliHealthEmulator) -> None:
    client = AliHealthClient(_cfg(gateway, max_codes=4))
    try:
        results = await client.upload_bill(_bill("BIG", 10, start=1000))
        retry = await client.upload_bill(_bill("BIG", 10, start=1000))
    finally:
        await client.aclose()
    assert [(r.bill_code, r.status) for r in results] == [
        ("BIG-1", "accepted"),
        ("BIG-2", "accepted"),
        ("BIG-3", "accepted"),
    ]
    assert {r.status for r in retry} == {"duplicate"}
    assert len(gateway.state.bills[("ref-1", "BIG-3")]["trace_codes"].split(",")) == 2


async def test_rate_limit_then_failure_then_sold_codes(gateway: AliHealthEmulator) -> None:
    client = AliHealthClient(_cfg(gateway))
    try:
        gateway.state.rate_limit_next = 1
        with pytest.raises(RateLimitedError) as info:
            await client.upload_bill(_bill("OUT-1", 2, start=2000, bill_type=201))
        assert info.value.retry_after == 1.0
        gateway.state.fail_next = 1
        (failed,) = await client.upload_bill(_bill("OUT-1", 2, start=2000, bill_type=201))
        (ok,) = await client.upload_bill(_bill("OUT-1", 2, start=2000, bill_type=201))
        (sold,) = await client.upload_bill(_bill("OUT-2", 2, start=2001, bill_type=201))
    finally:
        await client.aclose()
    assert failed.status == "rejected"
    assert failed.msg_code == "FAIL"
    assert ok.status == "accepted"
    assert sold.status == "rejected"
    assert "已销售" in sold.message


async def test_wrong_secret_is_refused(gateway: AliHealthEmulator) -> None:
    client = AliHealthClient(_cfg(gateway, secret="wrong"))
    try:
        with pytest.raises(AuthError, match="Invalid signature"):
            await client.upload_bill(_bill("X-1", 1, start=3000))
    finally:
        await client.aclose()


async def test_stale_timestamp_and_missing_fields_are_refused(gateway: AliHealthEmulator) -> None:
    stale = AliHealthClient(_cfg(gateway), clock=lambda: datetime.now(UTC) - timedelta(minutes=11))
    try:
        # Error 31: the box's clock, not the bill; measured from the gateway's Date header.
        with pytest.raises(ClockSkewError, match="behind the 码上放心 gateway's") as info:
            await stale.upload_bill(_bill("X-2", 1, start=3001))
    finally:
        await stale.aclose()
    assert info.value.offset_s is not None
    assert -662 <= info.value.offset_s <= -658  # 11 minutes behind, the Date to the second
    assert "31 Invalid timestamp" in str(info.value)
    client = AliHealthClient(_cfg(gateway))
    try:
        reply = await client.call("alibaba.alihealth.drug.kyt.uploadinoutbill", {"bill_code": "X"})
    finally:
        await client.aclose()
    assert reply["error_response"]["code"] == 40


def test_emulator_checks_the_signature_over_the_raw_form(gateway: AliHealthEmulator) -> None:
    params = {
        "method": "alibaba.alihealth.drugtrace.top.lsyd.query.billstatus",
        "app_key": "app1",
        "timestamp": (datetime.now(UTC) + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S"),
        "format": "json",
        "v": "2.0",
        "sign_method": "md5",
        "ref_ent_id": "nobody",
        "begin_date": "2026-01-01",
        "end_date": "2026-12-31",
    }
    params["sign"] = sign(params, "s3cret", "md5")
    reply = httpx.post(gateway.url, data=params).json()
    result = reply["alibaba_alihealth_drugtrace_top_lsyd_query_billstatus_response"]["result"]
    assert result["model"]["result_list"] == []
    params["ref_ent_id"] = "tampered"
    assert httpx.post(gateway.url, data=params).json()["error_response"]["code"] == 25


async def test_optional_parameters_are_signed_sent_and_never_replace_the_bills(
    gateway: AliHealthEmulator,
) -> None:
    # Site-wide parameters under the bill's own: both reach the gateway, which checks the
    # signature over every parameter (a parameter left out of it would be refused).
    client = AliHealthClient(
        _cfg(gateway, extra={"warehouse_id": "WH-site", "from_person": "张三"})
    )
    bill = dataclasses.replace(
        _bill("OPT-1", 2, start=700),
        extra={"warehouse_id": "WH-7", "order_code": "PO-9", "qu_receivable": "2"},
    )
    try:
        (r,) = await client.upload_bill(bill)
    finally:
        await client.aclose()
    assert r.status == "accepted"
    stored = gateway.state.bills[("ref-1", "OPT-1")]
    assert (stored["warehouse_id"], stored["order_code"], stored["from_person"]) == (
        "WH-7",
        "PO-9",
        "张三",
    )
    assert stored["qu_receivable"] == "2"
    assert stored["sign"] == sign(stored, "s3cret", "hmac-sha256")
    assert stored["bill_code"] == "OPT-1"


def test_an_unknown_optional_parameter_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="not optional upload parameters: bill_type, shelf"):
        upload_params(
            dataclasses.replace(_bill("X", 1), extra={"shelf": "A", "bill_type": "999"}),
            ref_user_id="r",
            oper_ic_code="c",
            oper_ic_name="n",
        )
    # The client refuses it as the config does (one check, sinks/alihealth/_settings.py).
    with pytest.raises(
        ConfigError,
        match=r"^alihealth\.extra\.shelf: not an optional parameter of the 码上放心 bill upload",
    ):
        AliHealthConfig(app_key="k", secret="s", ref_user_id="r", extra={"shelf": "A"})


@pytest.mark.parametrize(
    ("api", "status_api", "method"),
    [
        ("kyt", "", "alibaba.alihealth.drug.kyt.scqy.searchstatus"),
        ("kyt", "wes", "alibaba.alihealth.drug.kyt.wes.searchstatus"),
        ("lsyd", "", "alibaba.alihealth.drugtrace.top.lsyd.query.billstatus"),
        ("kyt", "lsyd", "alibaba.alihealth.drugtrace.top.lsyd.query.billstatus"),
    ],
)
async def test_bill_status_asks_the_query_of_the_api(
    gateway: AliHealthEmulator, api: str, status_api: str, method: str
) -> None:
    client = AliHealthClient(_cfg(gateway, api=api, status_api=status_api))
    number = f"ST-{api}-{status_api or 'default'}"
    try:
        await client.upload_bill(_bill(number, 1, start=800 + len(gateway.state.bills)))
        gateway.state.fail_processing[number] = "企业资质过期"
        (state,) = await client.bill_status(number, begin_date="2026-01-01", end_date="2099-12-31")
    finally:
        await client.aclose()
    assert gateway.state.calls[-1]["method"] == method
    assert (state.bill_code, state.failed, state.message) == (number, True, "企业资质过期")


async def test_the_gateway_sends_its_own_clock_and_refuses_outside_its_window(
    gateway: AliHealthEmulator,
) -> None:
    gateway.state.clock_offset_s = -3600.0  # the gateway runs an hour behind
    client = AliHealthClient(_cfg(gateway))
    try:
        with pytest.raises(ClockSkewError, match="1 h 0 min ahead of") as info:
            await client.upload_bill(_bill("X-4", 1, start=3100))
        assert info.value.offset_s is not None
        assert 3598 <= info.value.offset_s <= 3602
        # Within the window the call goes through (the offset is still measured).
        gateway.state.clock_offset_s = 300.0
        (ok,) = await client.upload_bill(_bill("X-4", 1, start=3100))
        assert ok.status == "accepted"
        assert client.clock_offset_s is not None
        assert -302 <= client.clock_offset_s <= -298
    finally:
        await client.aclose()


async def test_ip_whitelist_api_package_and_app_key_refusals_are_the_sites(
    gateway: AliHealthEmulator,
) -> None:
    client = AliHealthClient(_cfg(gateway))
    try:
        gateway.state.ip_whitelist = {"192.0.2.7"}
        with pytest.raises(SiteProblemError, match="IP whitelist") as ip:
            await client.upload_bill(_bill("X-5", 1, start=3200))
        assert "isv.permission-ip-whitelist-limit" in str(ip.value)
        gateway.state.ip_whitelist = {"127.0.0.1"}
        gateway.state.allowed_methods = set()
        with pytest.raises(SiteProblemError, match="API package"):
            await client.upload_bill(_bill("X-5", 1, start=3200))
        gateway.state.allowed_methods = None
        with gateway.state.lock:
            gateway.state.apps.clear()
        with pytest.raises(SiteProblemError, match=r"alihealth\.app_key"):
            await client.upload_bill(_bill("X-5", 1, start=3200))
    finally:
        await client.aclose()
