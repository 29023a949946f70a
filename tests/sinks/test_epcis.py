"""EPCIS 2.0 documents from scans, checked for structure and against GS1's JSON Schema
(``tests/sinks/epcis_schema.py``: fetched by ``make test``, or ``EPCIS_JSON_SCHEMA``)."""

from __future__ import annotations

import jsonschema
import pytest

from scanner_agent.outbox import BatchEvent
from scanner_agent.sinks.epcis import (
    EpcisConfig,
    aggregation_event,
    build_document,
    epc_uri,
    object_event,
)
from tests.sinks.epcis_schema import needs_schema, validate

CFG = EpcisConfig(
    read_point="urn:epc:id:sgln:0614141.00777.0", biz_location="urn:epc:id:sgln:0614141.00888.0"
)


def _scan(
    code: str,
    scheme: str,
    action: str = "ship",
    at: str = "2026-11-23T10:15:00.123+08:00",
    event_id: str = "e1",
) -> BatchEvent:
    return BatchEvent(
        seq=1,
        event_id=event_id,
        code=code,
        scheme=scheme,
        action=action,
        bill="SO-1",
        scanned_at=at,
        source="s1",
    )


def test_gs1_codes_become_digital_link_uris() -> None:
    assert epc_uri("(01)09506000134352(17)270101(10)L1(21)A/1", "gs1", CFG) == (
        "https://id.gs1.org/01/09506000134352/21/A%2F1"
    )
    with pytest.raises(ValueError, match="serial"):
        epc_uri("(01)09506000134352", "gs1", CFG)


def test_cn20_prefix_is_configurable() -> None:
    cfg = EpcisConfig("urn:x:rp", "urn:x:loc", cn20_uri_prefix="urn:example:cn20:")
    assert epc_uri("81234567890123456789", "cn20", cfg) == "urn:example:cn20:81234567890123456789"


def test_object_event_fields() -> None:
    event = object_event(_scan("81234567890123456789", "cn20"), CFG)
    assert event["type"] == "ObjectEvent"
    assert event["action"] == "OBSERVE"
    assert (event["bizStep"], event["disposition"]) == ("shipping", "in_transit")
    assert event["eventTime"] == "2026-11-23T02:15:00.123Z"
    assert event["eventTimeZoneOffset"] == "+08:00"
    assert event["bizTransactionList"] == [
        {"type": "desadv", "bizTransaction": "urn:cn:drugtrace:bill:SO-1"}
    ]
    assert event["readPoint"] == {"id": CFG.read_point}
    assert event["eventID"].startswith("ni:///sha-256;")
    assert event["eventID"].endswith("?ver=CBV2.0")


def test_event_ids_are_deterministic_and_content_bound() -> None:
    a = object_event(_scan("81234567890123456789", "cn20"), CFG)
    b = object_event(_scan("81234567890123456789", "cn20"), CFG)
    c = object_event(_scan("81234567890123456789", "cn20", action="receive"), CFG)
    assert a["eventID"] == b["eventID"]
    assert a["eventID"] != c["eventID"]


CARTON = "81234500000000011111"
UNITS = [("81234560000000011234", "cn20"), ("(01)09506000134352(21)SER1", "gs1")]


def test_a_carton_with_known_units_becomes_an_aggregation_event() -> None:
    scan = _scan(CARTON, "cn20", "receive")
    event = aggregation_event(scan, UNITS, CFG)
    observed = object_event(scan, CFG)
    assert event["type"] == "AggregationEvent"
    assert event["action"] == "ADD"
    assert event["parentID"] == f"urn:cn:drugtrace:{CARTON}"
    assert event["childEPCs"] == [
        "https://id.gs1.org/01/09506000134352/21/SER1",
        "urn:cn:drugtrace:81234560000000011234",
    ]
    # The same when, why and where as the scan's own ObjectEvent.
    for key in (
        "eventTime",
        "eventTimeZoneOffset",
        "bizStep",
        "disposition",
        "readPoint",
        "bizLocation",
        "bizTransactionList",
    ):
        assert event[key] == observed[key], key
    assert event["bizTransactionList"] == [
        {"type": "recadv", "bizTransaction": "urn:cn:drugtrace:bill:SO-1"}
    ]
    assert event["eventID"].startswith("ni:///sha-256;")
    assert event["eventID"] != observed["eventID"]


def test_aggregation_event_ids_depend_on_the_contents_not_their_order() -> None:
    scan = _scan(CARTON, "cn20")
    a = aggregation_event(scan, UNITS, CFG)
    b = aggregation_event(scan, [*reversed(UNITS), UNITS[0]], CFG)  # reordered, repeated
    c = aggregation_event(scan, UNITS[:1], CFG)
    assert a == b
    assert a["eventID"] != c["eventID"]
    with pytest.raises(ValueError, match="no known units"):
        aggregation_event(scan, [], CFG)
    with pytest.raises(ValueError, match="serial"):
        aggregation_event(scan, [("(01)09506000134352", "gs1")], CFG)


def test_a_document_carries_each_cartons_aggregation_after_its_scan() -> None:
    carton = _scan(CARTON, "cn20", event_id="carton")
    unit = _scan("81234560000000099999", "cn20", event_id="unit")
    doc = build_document([carton, unit], CFG, children={"carton": UNITS, "other": UNITS})
    kinds = [
        (e["type"], e.get("parentID") or e["epcList"][0]) for e in doc["epcisBody"]["eventList"]
    ]
    assert kinds == [
        ("ObjectEvent", f"urn:cn:drugtrace:{CARTON}"),
        ("AggregationEvent", f"urn:cn:drugtrace:{CARTON}"),
        ("ObjectEvent", "urn:cn:drugtrace:81234560000000099999"),
    ]


@pytest.mark.parametrize(
    "action",
    [
        "ship",
        "receive",
        "return",
        "sale",
        "dispense",
        "destroy",
        "transfer",
        "stocktake",
        "produce",
        "purchase",
    ],
)
@needs_schema
def test_documents_validate_against_the_gs1_schema(action: str) -> None:
    doc = build_document(
        [
            _scan("81234567890123456789", "cn20", action),
            _scan("(01)09506000134352(21)SER1", "gs1", action, at="2026-11-23T10:15:00-05:30"),
            _scan(CARTON, "cn20", action, event_id="carton"),
        ],
        CFG,
        children={"carton": UNITS},
    )
    validate(doc)
    assert doc["type"] == "EPCISDocument"
    types = [e["type"] for e in doc["epcisBody"]["eventList"]]
    assert types == ["ObjectEvent", "ObjectEvent", "ObjectEvent", "AggregationEvent"]


@needs_schema
def test_the_schema_catches_a_broken_event() -> None:
    doc = build_document([_scan("81234567890123456789", "cn20")], CFG)
    doc["epcisBody"]["eventList"][0]["eventTimeZoneOffset"] = "8h"
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


@needs_schema
def test_the_schema_catches_a_broken_aggregation_event() -> None:
    doc = build_document([_scan(CARTON, "cn20")], CFG, children={"e1": UNITS})
    doc["epcisBody"]["eventList"][1]["action"] = "PACK"
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


def test_bill_numbers_that_are_not_uri_text_are_percent_encoded() -> None:
    scan = BatchEvent(
        seq=1,
        event_id="e1",
        code="81234567890123456789",
        scheme="cn20",
        action="receive",
        bill="入库 2026/11#7",
        scanned_at="2026-11-23T10:15:00+08:00",
        source="s1",
    )
    tx = object_event(scan, CFG)["bizTransactionList"]
    assert tx == [
        {
            "type": "recadv",
            "bizTransaction": "urn:cn:drugtrace:bill:%E5%85%A5%E5%BA%93%202026/11%237",
        }
    ]


@needs_schema
def test_odd_bill_numbers_and_serials_still_validate() -> None:
    scans = [
        BatchEvent(
            seq=i,
            event_id=f"e{i}",
            code=code,
            scheme=scheme,
            action="ship",
            bill="出库单 SO-1/2 50%",
            scanned_at="2026-11-23T10:15:00+08:00",
            source="s1",
        )
        for i, (code, scheme) in enumerate(
            [("81234567890123456789", "cn20"), ("(01)09506000134352(21)A/1\\(x)%", "gs1")]
        )
    ]
    validate(build_document(scans, CFG))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bizStep", "shipping_out"),  # neither a CBV bare word nor a URI
        ("disposition", "gone"),
        ("epcList", ["not a uri"]),
        ("eventTime", "2026-11-23 10:15"),
        ("bizTransactionList", [{"type": "desadv"}]),
        ("readPoint", {"name": "dock 1"}),
    ],
)
@needs_schema
def test_the_schema_catches_a_broken_object_event(field: str, value: object) -> None:
    doc = build_document([_scan("81234567890123456789", "cn20")], CFG)
    validate(doc)
    doc["epcisBody"]["eventList"][0][field] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


@needs_schema
def test_the_schema_wants_the_json_ld_context() -> None:
    doc = build_document([_scan("81234567890123456789", "cn20")], CFG)
    del doc["@context"]
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)
