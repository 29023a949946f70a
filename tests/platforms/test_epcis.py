"""EPCIS 2.0 documents from scans, checked for structure and (given the file) against GS1's JSON Schema."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scanner_agent.outbox import BatchEvent
from scanner_agent.platforms.epcis import EpcisConfig, build_document, epc_uri, object_event

CFG = EpcisConfig(
    read_point="urn:epc:id:sgln:0614141.00777.0", biz_location="urn:epc:id:sgln:0614141.00888.0"
)

# GS1's EPCIS 2.0 JSON Schema is published under GS1's IP policy, not an open licence, so it
# is not copied into this repository: point EPCIS_JSON_SCHEMA at a copy of the final
# EPCIS-JSON-Schema.json (https://ref.gs1.org/standards/epcis/) to run the schema tests.
_SCHEMA_PATH = os.environ.get("EPCIS_JSON_SCHEMA", "")
needs_schema = pytest.mark.skipif(
    not _SCHEMA_PATH or not Path(_SCHEMA_PATH).is_file(),
    reason="set EPCIS_JSON_SCHEMA to GS1's EPCIS-JSON-Schema.json to validate against it",
)


def _validate(doc: dict[str, Any]) -> None:
    schema = json.loads(Path(_SCHEMA_PATH).read_text("utf-8"))
    jsonschema.Draft7Validator(schema).validate(doc)


def _scan(
    code: str, scheme: str, action: str = "ship", at: str = "2026-11-23T10:15:00.123+08:00"
) -> BatchEvent:
    return BatchEvent(
        seq=1,
        event_id="e1",
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
        ],
        CFG,
    )
    _validate(doc)
    assert doc["type"] == "EPCISDocument"
    assert len(doc["epcisBody"]["eventList"]) == 2


@needs_schema
def test_the_schema_catches_a_broken_event() -> None:
    doc = build_document([_scan("81234567890123456789", "cn20")], CFG)
    doc["epcisBody"]["eventList"][0]["eventTimeZoneOffset"] = "8h"
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc)
