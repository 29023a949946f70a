"""Trace API v1 on the wire: a leased batch as the ``POST /v1/batches`` body, the reply's
results checked against it.  Pure: no I/O (docs/trace-api.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from scanner_agent.kernel import ProtocolError
from scanner_agent.outbox import Batch, EventResult
from scanner_agent.sync import Admission

__all__ = ["RESULT_STATUSES", "TRACE_API_ADMISSION", "decode_results", "encode_batch"]

TRACE_API_ADMISSION = Admission(
    platform="the trace service",
    schemes=frozenset({"cn20", "gs1", "ma"}),
    takes="20-digit trace codes, GS1 and MA codes",
)
"""Trace API v1 takes every scheme the agent parses, with or without a bill (docs/trace-api.md)."""

RESULT_STATUSES = frozenset({"accepted", "duplicate", "rejected"})

_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_ACCEPTED = EventResult("accepted", None)
"""The common verdict, shared: results are immutable and a batch has thousands of them."""


def encode_batch(batch: Batch, device_id: str) -> bytes:
    """The JSON body of ``POST /v1/batches`` for a leased batch (compact UTF-8)."""
    if batch.events_json is not None:
        # The lease rendered the events already (in SQLite, off the GIL): wrap them.
        head = _to_json(
            {
                "batch_id": batch.batch_id,
                "device_id": device_id,
                "sent_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
        )
        return f'{head[:-1]},"events":{batch.events_json}}}'.encode()
    # A batch not leased by Outbox.lease (tests, other sinks' batches): encode it here.
    events = [e.to_wire() for e in batch.events]
    body = {
        "batch_id": batch.batch_id,
        "device_id": device_id,
        "sent_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "events": events,
    }
    return _to_json(body).encode("utf-8")


def decode_results(batch: Batch, content: bytes) -> dict[str, EventResult]:
    """Check a 200 reply against the batch and return results by event id.

    Raises:
        ProtocolError: bad JSON, wrong batch id, or results that do not cover
            exactly the batch's events with known statuses.
    """
    try:
        reply = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            f"Failed to parse reply to batch {batch.batch_id} as JSON: {exc}"
        ) from exc
    if not isinstance(reply, dict) or not isinstance(reply.get("results"), list):
        raise ProtocolError(f"Failed to read reply to batch {batch.batch_id}: no results list")
    if reply.get("batch_id") != batch.batch_id:
        raise ProtocolError(
            f"Failed to match reply to batch {batch.batch_id}: it names batch {reply.get('batch_id')!r}"
        )
    expected = {e.event_id for e in batch.events}
    out: dict[str, EventResult] = {}
    for item in reply["results"]:
        if not isinstance(item, dict):
            raise ProtocolError(
                f"Failed to read reply to batch {batch.batch_id}: result is not an object"
            )
        event_id, status, reason = item.get("event_id"), item.get("status"), item.get("reason")
        if event_id not in expected:
            raise ProtocolError(
                f"Failed to match reply to batch {batch.batch_id}: unknown event {event_id!r}"
            )
        if event_id in out:
            raise ProtocolError(
                f"Failed to read reply to batch {batch.batch_id}: event {event_id} twice"
            )
        if status == "accepted" and reason is None:
            out[event_id] = _ACCEPTED
        elif status in RESULT_STATUSES:
            out[event_id] = EventResult(str(status), None if reason is None else str(reason))
        else:
            raise ProtocolError(
                f"Failed to read reply to batch {batch.batch_id}: status {status!r}"
            )
    if len(out) != len(expected):
        raise ProtocolError(
            f"Failed to match reply to batch {batch.batch_id}: "
            f"{len(expected) - len(out)} of {len(expected)} events have no result"
        )
    return out
