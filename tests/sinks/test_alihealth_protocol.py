"""码上放心 protocol layer: signing vectors, request building, reply parsing, splitting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner_agent.kernel import (
    AuthError,
    BatchRejectedError,
    ClockSkewError,
    ProtocolError,
    RateLimitedError,
    SiteProblemError,
    SyncError,
    TransientSyncError,
)
from scanner_agent.sinks.alihealth import (
    BillUpload,
    billstatus_params,
    clock_problem,
    parse_billstatus_reply,
    parse_top_error,
    parse_upload_reply,
    sign,
    signing_string,
    split_bill,
    top_timestamp,
    upload_params,
)

KYT = "alibaba.alihealth.drug.kyt.uploadinoutbill"
PARAMS = {
    "method": KYT,
    "app_key": "test",
    "timestamp": "2026-11-23 12:00:00",
    "format": "json",
    "v": "2.0",
    "sign_method": "md5",
    "bill_code": "单001",
    "sign": "ignored",
    "empty": "",
}
# Computed once, independently, with hashlib/hmac over
# "app_keytestbill_code单001formatjsonmethodalibaba.alihealth.drug.kyt.uploadinoutbill"
# "sign_methodmd5timestamp2026-11-23 12:00:00v2.0" and the secret "helloworld".
MD5 = "22C74D6305EF62A77A044DAD554E3171"
HMAC_MD5 = "AF059EC752960FE2EB093D89B4A8E926"
HMAC_SHA256 = "0CDE19B874B2C4658CE521BD35FA9FBE5F0B7460D3FC1168C22EB66C22B0DA2A"


def test_signing_string_sorts_by_name_and_skips_sign_and_empty_values() -> None:
    assert signing_string(PARAMS) == (
        "app_keytestbill_code单001formatjson"
        f"method{KYT}sign_methodmd5timestamp2026-11-23 12:00:00v2.0"
    )


def test_signing_string_matches_the_public_top_example() -> None:
    # The open platform's documented example: foo:1, bar:2, foo_bar:3, foobar:4.
    assert signing_string({"foo": "1", "bar": "2", "foo_bar": "3", "foobar": "4"}) == (
        "bar2foo1foo_bar3foobar4"
    )
    assert (
        sign({"foo": "1", "bar": "2", "foo_bar": "3", "foobar": "4"}, "secret", "md5")
        == "4B4AC0F2D69BA521FFDE55A2BBEE3025"
    )


@pytest.mark.parametrize(
    ("method", "expected"), [("md5", MD5), ("hmac", HMAC_MD5), ("hmac-sha256", HMAC_SHA256)]
)
def test_sign_matches_independent_vectors(method: str, expected: str) -> None:
    assert sign(PARAMS, "helloworld", method) == expected  # type: ignore[arg-type]


def test_timestamp_is_gmt8() -> None:
    assert top_timestamp(datetime(2026, 11, 23, 16, 30, tzinfo=UTC)) == "2026-11-24 00:30:00"
    with pytest.raises(ValueError, match="aware"):
        top_timestamp(datetime(2026, 1, 1))


def _codes(n: int, start: int = 0) -> tuple[str, ...]:
    return tuple(f"8{i:019d}" for i in range(start, start + n))


def _bill(codes: tuple[str, ...], number: str = "B1") -> BillUpload:
    return BillUpload(
        bill_code=number,
        bill_time=datetime(2026, 11, 23, 4, 0, tzinfo=UTC),
        bill_type=201,
        from_user_id="ent-from",
        to_user_id="ent-to",
        codes=codes,
        extra={"warehouse_id": "W1"},
    )


def test_upload_params_have_the_documented_names() -> None:
    p = upload_params(_bill(_codes(2)), ref_user_id="ref", oper_ic_code="app", oper_ic_name="张三")
    assert p == {
        "bill_code": "B1",
        "bill_time": "2026-11-23 12:00:00",
        "bill_type": "201",
        "physic_type": "3",
        "ref_user_id": "ref",
        "from_user_id": "ent-from",
        "to_user_id": "ent-to",
        "oper_ic_code": "app",
        "oper_ic_name": "张三",
        "client_type": "2",
        "trace_codes": "80000000000000000000,80000000000000000001",
        "warehouse_id": "W1",
    }


@pytest.mark.parametrize(
    "code", ["01234567890123456789", "8123", "812345678901234567890", "8123456789012345678X"]
)
def test_upload_params_refuse_non_trace_codes(code: str) -> None:
    with pytest.raises(ValueError, match="not 码上放心 trace codes"):
        upload_params(_bill((code,)), ref_user_id="r", oper_ic_code="a", oper_ic_name="")


def test_split_keeps_a_small_bill_whole_and_sorted() -> None:
    codes = _codes(3)
    (only,) = split_bill(_bill(codes[::-1] + codes[:1]))
    assert only.bill_code == "B1"
    assert only.codes == codes


def test_split_is_deterministic_whatever_the_scan_order() -> None:
    codes = _codes(25)
    a = split_bill(_bill(codes), max_codes=10)
    b = split_bill(_bill(tuple(reversed(codes))), max_codes=10)
    assert a == b
    assert [p.bill_code for p in a] == ["B1-1", "B1-2", "B1-3"]
    assert [len(p.codes) for p in a] == [10, 10, 5]
    assert a[0].codes[0] == codes[0]
    assert a[2].codes[-1] == codes[-1]


def test_split_at_ten_thousand_by_default() -> None:
    parts = split_bill(_bill(_codes(10_001)))
    assert [(p.bill_code, len(p.codes)) for p in parts] == [("B1-1", 10_000), ("B1-2", 1)]


def _reply(result: dict[str, object], method: str = KYT) -> dict[str, object]:
    return {method.replace(".", "_") + "_response": {"result": result, "request_id": "r"}}


def test_success_is_accepted() -> None:
    r = parse_upload_reply(_reply({"response_success": True, "msg_code": "SUCCESS"}), KYT, "B1")
    assert (r.status, r.msg_code) == ("accepted", "SUCCESS")


def test_fields_at_the_top_level_are_read_too() -> None:
    reply = {
        KYT.replace(".", "_") + "_response": {"response_success": "true", "msg_code": "SUCCESS"}
    }
    assert parse_upload_reply(reply, KYT, "B1").status == "accepted"


def test_known_bill_number_counts_as_delivered() -> None:
    reply = _reply({"response_success": False, "msg_code": "FAIL", "msg_info": "该单据号已存在"})
    assert parse_upload_reply(reply, KYT, "B1").status == "duplicate"


def test_business_failure_is_rejected_with_the_platform_message() -> None:
    reply = _reply(
        {"response_success": False, "msg_code": "FAIL", "msg_info": "追溯码已销售出库: 8..."}
    )
    r = parse_upload_reply(reply, KYT, "B1")
    assert (r.status, r.message) == ("rejected", "追溯码已销售出库: 8...")


def test_code_7_is_a_rate_limit_with_the_ban_length() -> None:
    reply = {
        "error_response": {
            "code": 7,
            "msg": "App Call Limited",
            "sub_code": "accesscontrol.limited-by-app-api-access-count",
            "sub_msg": "This ban will last for 13 more seconds",
        }
    }
    with pytest.raises(RateLimitedError) as info:
        parse_upload_reply(reply, KYT, "B1")
    assert info.value.retry_after == 13.0


@pytest.mark.parametrize(
    ("code", "sub_code", "error"),
    [
        (4, "", RateLimitedError),
        (7, "accesscontrol.limited-by-app-api-access-count", RateLimitedError),
        (8, "", RateLimitedError),
        (10, "isp.service-unavailable", TransientSyncError),
        (15, "isp.remote-service-error", TransientSyncError),
        (520, "", TransientSyncError),
        (25, "", AuthError),
        (24, "", AuthError),
        (31, "", ClockSkewError),
        (11, "isv.permission-ip-whitelist-limit", SiteProblemError),
        (11, "isv.permission-api-package-limit", SiteProblemError),
        (12, "", SiteProblemError),
        (22, "", SiteProblemError),
        (27, "", SiteProblemError),
        (29, "", SiteProblemError),
        (53, "", SiteProblemError),
        (15, "isv.invalid-parameter:trace_codes", BatchRejectedError),
        (40, "ise.missing-required-arguments:bill_code", BatchRejectedError),
        (41, "", BatchRejectedError),
        (43, "ise.parameter-error-maxlength:bill_code", BatchRejectedError),
        (501, "", BatchRejectedError),
    ],
)
def test_each_top_error_is_held_or_refused_by_what_it_is_about(
    code: int, sub_code: str, error: type[Exception]
) -> None:
    reply = {"error_response": {"code": code, "msg": "m", "sub_code": sub_code}}
    with pytest.raises(SyncError) as info:
        parse_top_error(reply)
    assert type(info.value) is error


@given(st.integers(min_value=0, max_value=99), st.text(max_size=40))
def test_a_call_error_about_the_site_never_refuses_the_bill(code: int, sub_code: str) -> None:
    # TOP: errors below 100 but 15, 40, 41 (and 43, a parameter error) come from the call's
    # basic checks, not from its data: they must never dead-letter a bill.
    reply = {"error_response": {"code": code, "msg": "m", "sub_code": sub_code}}
    with pytest.raises(SyncError) as info:
        parse_top_error(reply, clock_offset_s=-1234.0)
    if code not in (15, 40, 41, 43) or sub_code.startswith("isp."):
        assert not isinstance(info.value, BatchRejectedError), info.value
    if code == 31:
        assert isinstance(info.value, ClockSkewError)
        assert info.value.offset_s == -1234.0
        assert "20 min 34 s behind" in str(info.value)


def test_the_clock_alarm_without_a_date_says_it_could_not_measure() -> None:
    assert "more than 10 minutes off" in clock_problem(None)
    assert "no Date to measure by" in clock_problem(None)
    assert "2 h 0 min ahead of" in clock_problem(7200.4)
    assert "5 s behind" in clock_problem(-5.0)


def test_bad_signature_is_an_auth_error_and_others_refuse_the_call() -> None:
    with pytest.raises(AuthError, match="Invalid signature"):
        parse_upload_reply({"error_response": {"code": 25, "msg": "Invalid signature"}}, KYT, "B")
    with pytest.raises(BatchRejectedError, match="Missing"):
        parse_upload_reply({"error_response": {"code": 40, "msg": "Missing"}}, KYT, "B")


def test_a_reply_for_another_method_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        parse_upload_reply(_reply({"response_success": True}, "other.method"), KYT, "B1")


def test_billstatus_request_and_reply() -> None:
    p = billstatus_params(
        ref_ent_id="ref", begin_date="2026-11-01", end_date="2026-11-30", bill_code="B1"
    )
    assert p == {
        "ref_ent_id": "ref",
        "begin_date": "2026-11-01",
        "end_date": "2026-11-30",
        "bill_type": "A",
        "bill_code": "B1",
        "page": "1",
        "page_size": "50",
    }
    method = "alibaba.alihealth.drugtrace.top.lsyd.query.billstatus"
    reply = _reply(
        {
            "response_success": True,
            "model": {"result_list": {"bill_status_dto": [{"bill_code": "B1", "deal_status": 3}]}},
        },
        method,
    )
    (status,) = parse_billstatus_reply(reply)
    assert status.bill_code == "B1"
    assert status.done
    assert not status.failed
