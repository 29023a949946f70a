"""GS1 EPCIS 2.0 JSON/JSON-LD capture documents from scans.

Pure functions, no I/O: the capture client (:mod:`._client`) sends what
they build, the sink (:mod:`._sink`) reads the carton contents from the
outbox.  Each scan becomes one ``ObjectEvent`` with ``action`` OBSERVE:

* ``epcList``: a GS1 code as its GS1 Digital Link URI
  (``https://id.gs1.org/01/<gtin>/21/<serial>``), a cn20 code as
  ``<cn20_uri_prefix><code>`` (default ``urn:cn:drugtrace:``; EPCIS 2.0 allows
  any URI, and China's 码上放心 codes have no GS1 key).
* ``bizStep`` and ``disposition`` from the scan's action (CBV 2.0 bare words:
  ship -> shipping / in_transit, receive -> receiving / in_progress ...).
* ``readPoint`` and ``bizLocation`` from config (an SGLN or any URI).
* ``bizTransactionList``: the bill number as ``<bill_uri_prefix><bill>``, the bill
  percent-encoded (UTF-8) where it is not URI text, so ``出库 1`` is
  ``%E5%87%BA%E5%BA%93%201`` (type ``desadv`` when shipping, ``recadv`` when receiving, ``po`` when
  purchasing, else untyped).
* ``eventTime`` (UTC) and ``eventTimeZoneOffset`` from the scan's RFC 3339 time.
* ``eventID``: ``ni:///sha-256;<hex>?ver=CBV2.0`` over the event's canonical
  content, so the same scan always has the same id and a resend is recognisable.
  The hash input is this module's own canonical form (sorted compact JSON of the
  event without ``eventID``), *not* the CBV 2.0 event-hash algorithm.

A scanned carton whose units are known (the bill's pack data, ``parent,child``
relations) also becomes an ``AggregationEvent`` (:func:`aggregation_event`):
``action`` ADD, ``parentID`` the carton's URI, ``childEPCs`` the units' URIs,
and the scan's time, ``bizStep``, ``disposition``, ``readPoint``,
``bizLocation`` and ``bizTransactionList``, so a receiver that unpacks the
carton knows which units it held.  Its ``eventID`` is deterministic too.

Sources: EPCIS 2.0 / CBV 2.0 (GS1, 2022), the JSON Schema
``EPCIS-JSON-Schema.json`` of github.com/gs1/EPCIS (GS1's IP policy, not an
open licence, so not copied here: the tests validate against it when
``EPCIS_JSON_SCHEMA`` names a copy, and skip saying so otherwise), the REST
binding's ``POST /capture`` (202 Accepted with ``Location: /capture/<id>``,
then ``GET`` of that job: ``running``, ``success``, ``errors``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from scanner_agent.codes import parse_gs1
from scanner_agent.outbox import BatchEvent

__all__ = [
    "EPCIS_CONTEXT",
    "EPC_SCHEMES",
    "Child",
    "EpcisConfig",
    "aggregation_event",
    "build_document",
    "epc_uri",
    "event_id",
    "object_event",
    "scan_events",
]

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"

_BIZ_STEPS: dict[str, tuple[str, str]] = {
    "ship": ("shipping", "in_transit"),
    "receive": ("receiving", "in_progress"),
    "purchase": ("receiving", "in_progress"),
    "return": ("receiving", "returned"),
    "sale": ("retail_selling", "retail_sold"),
    "dispense": ("dispensing", "dispensed"),
    "destroy": ("destroying", "destroyed"),
    "transfer": ("shipping", "in_transit"),
    "stocktake": ("cycle_counting", "sellable_accessible"),
    "produce": ("commissioning", "active"),
}
"""Scan action -> (CBV bizStep, CBV disposition)."""

Child = tuple[str, str]
"""A unit in a carton: ``(code, scheme)`` as the outbox stores scans (``cn20``, ``gs1``)."""

_TX_TYPES = {"ship": "desadv", "transfer": "desadv", "receive": "recadv", "purchase": "po"}


@dataclass(frozen=True, slots=True)
class EpcisConfig:
    """Where and how scans are reported (the ``[epcis]`` table of the config)."""

    read_point: str
    """URI of the scanning point, e.g. ``urn:epc:id:sgln:0614141.00777.0`` or a Digital Link."""
    biz_location: str
    """URI of the site the goods are at after the event."""
    cn20_uri_prefix: str = "urn:cn:drugtrace:"
    bill_uri_prefix: str = "urn:cn:drugtrace:bill:"


EPC_SCHEMES: frozenset[str] = frozenset({"cn20", "gs1"})
"""Schemes :func:`epc_uri` gives a URI: the EPCIS sink takes only these (an MA code has
no EPC URI here), and refuses the others at the scanner."""


def epc_uri(code: str, scheme: str, cfg: EpcisConfig) -> str:
    """The EPC URI of a scanned code.

    >>> cfg = EpcisConfig("urn:x:rp", "urn:x:loc")
    >>> epc_uri("(01)09506000134352(21)A1B2", "gs1", cfg)
    'https://id.gs1.org/01/09506000134352/21/A1B2'
    >>> epc_uri("81234567890123456789", "cn20", cfg)
    'urn:cn:drugtrace:81234567890123456789'

    Raises:
        ValueError: a GS1 code without GTIN (01) and serial (21), or an unknown scheme.
    """
    if scheme == "gs1":
        data = parse_gs1(code)  # the stored code as the agent reads it ("(" in a value is "\\(")
        gtin = None if isinstance(data, str) else data.value("01")
        serial = None if isinstance(data, str) else data.value("21")
        if gtin is None or serial is None:
            raise ValueError(f"GS1 code {code!r} has no GTIN (01) and serial (21)")
        return f"https://id.gs1.org/01/{gtin}/21/{quote(serial, safe='-._~')}"
    if scheme == "cn20":
        return cfg.cn20_uri_prefix + code
    raise ValueError(f"unknown code scheme {scheme!r}")


_URI_SAFE = "-._~!$&'()*+,;=:@/"
"""RFC 3986 unreserved, sub-delims, ``:``, ``@`` and ``/``: what may stand in a URI path as is."""


def _uri_text(text: str) -> str:
    """``text`` for the path of a URI: everything else percent-encoded as UTF-8 (``%`` too).

    >>> _uri_text("SO 1/2 出")
    'SO%201/2%20%E5%87%BA'
    """
    return quote(text, safe=_URI_SAFE)


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_id(event: Mapping[str, Any]) -> str:
    """``ni:///sha-256;<hex>?ver=CBV2.0`` over ``event`` without its ``eventID``."""
    body = {k: v for k, v in event.items() if k != "eventID"}
    return f"ni:///sha-256;{hashlib.sha256(_canonical(body)).hexdigest()}?ver=CBV2.0"


def _time_and_offset(scanned_at: str) -> tuple[str, str]:
    when = datetime.fromisoformat(scanned_at.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"scan time {scanned_at!r} has no offset")
    offset = when.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    utc = when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return utc, f"{sign}{hours:02d}:{mins:02d}"


def _context(scan: BatchEvent, cfg: EpcisConfig) -> dict[str, Any]:
    """What every event of one scan says about when, why and where (shared by its events)."""
    event_time, offset = _time_and_offset(scan.scanned_at)
    biz_step, disposition = _BIZ_STEPS.get(scan.action, ("other", "unknown"))
    tx: dict[str, str] = {"bizTransaction": cfg.bill_uri_prefix + _uri_text(scan.bill)}
    if scan.action in _TX_TYPES:
        tx = {"type": _TX_TYPES[scan.action], **tx}
    return {
        "eventTime": event_time,
        "eventTimeZoneOffset": offset,
        "bizStep": biz_step,
        "disposition": disposition,
        "readPoint": {"id": cfg.read_point},
        "bizLocation": {"id": cfg.biz_location},
        "bizTransactionList": [tx],
    }


def object_event(scan: BatchEvent, cfg: EpcisConfig) -> dict[str, Any]:
    """One scan as an EPCIS 2.0 ``ObjectEvent`` (with its deterministic ``eventID``).

    Raises:
        ValueError: the scan's code or time cannot be expressed (see :func:`epc_uri`).
    """
    ctx = _context(scan, cfg)
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": ctx["eventTime"],
        "eventTimeZoneOffset": ctx["eventTimeZoneOffset"],
        "epcList": [epc_uri(scan.code, scan.scheme, cfg)],
        "action": "OBSERVE",
        **{k: ctx[k] for k in ("bizStep", "disposition", "readPoint", "bizLocation")},
        "bizTransactionList": ctx["bizTransactionList"],
    }
    event["eventID"] = event_id(event)
    return event


def aggregation_event(
    scan: BatchEvent, children: Sequence[Child], cfg: EpcisConfig
) -> dict[str, Any]:
    """A scanned carton and the units in it as an ``AggregationEvent`` (``action`` ADD).

    ``childEPCs`` are sorted and without repeats, so the same carton contents
    always give the same ``eventID`` whatever order the pack file listed them in.

    Raises:
        ValueError: no children, or the carton's or a child's code cannot be expressed.
    """
    if not children:
        raise ValueError(f"carton {scan.code} has no known units")
    ctx = _context(scan, cfg)
    event: dict[str, Any] = {
        "type": "AggregationEvent",
        "eventTime": ctx["eventTime"],
        "eventTimeZoneOffset": ctx["eventTimeZoneOffset"],
        "parentID": epc_uri(scan.code, scan.scheme, cfg),
        "childEPCs": sorted({epc_uri(code, scheme, cfg) for code, scheme in children}),
        "action": "ADD",
        **{k: ctx[k] for k in ("bizStep", "disposition", "readPoint", "bizLocation")},
        "bizTransactionList": ctx["bizTransactionList"],
    }
    event["eventID"] = event_id(event)
    return event


def scan_events(
    scan: BatchEvent, cfg: EpcisConfig, children: Sequence[Child] = ()
) -> list[dict[str, Any]]:
    """Every event of one scan: its ``ObjectEvent``, then the carton's ``AggregationEvent``
    when ``children`` are known.

    Raises:
        ValueError: as :func:`object_event` and :func:`aggregation_event`.
    """
    events = [object_event(scan, cfg)]
    if children:
        events.append(aggregation_event(scan, children, cfg))
    return events


def build_document(
    scans: Iterable[BatchEvent],
    cfg: EpcisConfig,
    *,
    created: datetime | None = None,
    children: Mapping[str, Sequence[Child]] | None = None,
) -> dict[str, Any]:
    """An ``EPCISDocument`` for ``POST /capture``: each scan's events (:func:`scan_events`).

    ``children`` maps a scan's outbox ``event_id`` to the units of the carton it scanned.

    Raises:
        ValueError: a scan that cannot be expressed (see :func:`scan_events`).
    """
    units = children or {}
    created_at = (created or datetime.now(UTC)).astimezone(UTC)
    return {
        "@context": [EPCIS_CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "epcisBody": {
            "eventList": [e for s in scans for e in scan_events(s, cfg, units.get(s.event_id, ()))]
        },
    }
