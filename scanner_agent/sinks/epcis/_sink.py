"""The EPCIS 2.0 sink of the sync loop: scans captured as ``ObjectEvent`` s, cartons also as
``AggregationEvent`` s.

EPCIS takes any events in any document, so batches are the outbox's ordinary
ones (oldest rows first, ``batch_size`` / ``batch_bytes``).

**Encoding** (on the outbox thread, right after the lease) only reads what the
documents need from the outbox: for each scan of a *closed* bill, the units of
the carton it scanned (``pack_children``, imported with ``scanner-agent bill
import --packs``).  Closed bills only: while a bill is open its scans are held
back anyway, and by the time it closes its pack data has been imported, so a
carton's aggregation is sent with the carton's scan, once.  Scans of default
bills (never opened) sync continuously and carry no aggregation.  A unit code
that is not a trace code refuses the carton's scan here, with a reason naming
it: the pack file is wrong, and sending half a carton would be worse.

The documents themselves are built in :meth:`EpcisCaptureClient.send_events`:
a capture may take several documents (what a rollback left unstored goes
again), each built from the events still owed.  Event ids are deterministic, so
a resent batch is recognised and its events come back as duplicates, which
count as delivered.
"""

# SQL here is assembled only from constant fragments; values are always bound parameters.

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from scanner_agent.codes import parse_scan
from scanner_agent.outbox import Batch, EventResult, Outbox
from scanner_agent.sinks.epcis._client import EpcisCaptureClient, EpcisCaptureConfig, ErrorBehaviour
from scanner_agent.sinks.epcis._document import EPC_SCHEMES, Child, EpcisConfig, epc_uri
from scanner_agent.sync import Admission, SinkContext, SinkNames, build_ssl_context

if TYPE_CHECKING:
    from scanner_agent.outbox import OutboxThread
    from scanner_agent.sinks.epcis._settings import EpcisAgentSettings

__all__ = ["EPCIS_ADMISSION", "EpcisPayload", "EpcisSink", "build", "carton_units", "names"]

EPCIS_ADMISSION = Admission(
    platform="EPCIS", schemes=EPC_SCHEMES, takes="GS1 and 20-digit trace codes"
)
"""EPCIS takes any event on any bill (or none), but only codes with an EPC URI."""


@dataclass(frozen=True, slots=True)
class EpcisPayload:
    """What :meth:`EpcisSink.encode` read from the outbox for one batch."""

    children: dict[str, tuple[Child, ...]] = field(default_factory=dict)
    """Outbox ``event_id`` of a carton's scan -> the units in it."""
    refused: dict[str, str] = field(default_factory=dict)
    """Outbox ``event_id`` -> why it cannot be sent (a dead letter with that reason)."""


def carton_units(outbox: Outbox, batch: Batch) -> EpcisPayload:
    """Outbox thread: the units of every carton scanned on a closed bill in ``batch``."""
    with outbox.bills() as store:
        closed = store.closed_bills(e.bill for e in batch.events)
        if not closed:
            return EpcisPayload()
        relations = store.children_of(e.code for e in batch.events)
    children: dict[str, tuple[Child, ...]] = {}
    refused: dict[str, str] = {}
    for e in batch.events:
        if e.bill not in closed or e.code not in relations:
            continue
        units: list[Child] = []
        for raw in relations[e.code]:
            parsed = parse_scan(raw)
            if not parsed.valid or parsed.code is None or parsed.scheme is None:
                refused[e.event_id] = (
                    f"carton {e.code}: its unit {raw!r} in the pack data is not a trace code "
                    f"({parsed.reason}); fix the pack file (bill import --packs) and requeue"
                )
                break
            units.append((parsed.code, str(parsed.scheme)))
        else:
            children[e.event_id] = tuple(units)
    return EpcisPayload(children, refused)


class EpcisSink:
    """:class:`EpcisCaptureClient` with the lease and encode steps of the sync loop.

    ``thread`` is the daemon's outbox thread: :meth:`encode` runs on it and reads
    the carton contents through its outbox.
    """

    admission = EPCIS_ADMISSION

    def __init__(self, client: EpcisCaptureClient, thread: OutboxThread) -> None:
        self.client = client
        self._thread = thread

    def __repr__(self) -> str:
        return f"EpcisSink({self.client!r})"

    def lease(self, outbox: Outbox, limit: int, *, lease_s: float, max_bytes: int) -> Batch | None:
        """The oldest sendable rows, as for Trace API v1."""
        return outbox.lease(limit, lease_s=lease_s, max_bytes=max_bytes)

    def encode(self, batch: Batch) -> EpcisPayload:
        """Outbox thread: the carton contents of the batch (see the module docstring).

        A scan the :attr:`admission` refuses (queued before it applied, e.g. under
        another ``sync.protocol``) is refused with the reason a NAK would have given.
        """
        payload = carton_units(self._thread.outbox, batch)
        for e in batch.events:
            why = self.admission.scheme_problem(e.scheme)
            if why is None and e.scheme == "gs1":
                # A code stored before GS1 data was checked completely may have no EPC:
                # refuse that one scan instead of failing its whole batch at every try.
                try:
                    epc_uri(e.code, e.scheme, self.client.cfg.document)
                except ValueError as exc:
                    why = str(exc)
            if why is not None:
                payload.refused[e.event_id] = why
        return payload

    async def send_batch(self, batch: Batch, body: Any) -> dict[str, EventResult]:
        """Capture the batch's scans (and cartons); one verdict per scan (see :mod:`._client`)."""
        if not isinstance(body, EpcisPayload):
            body = await self._thread.call(self.encode, batch)
        payload: EpcisPayload = body
        results = {eid: EventResult("rejected", why) for eid, why in payload.refused.items()}
        sendable = [e for e in batch.events if e.event_id not in payload.refused]
        if sendable:
            results.update(await self.client.send_events(sendable, children=payload.children))
        return results

    def set_token(self, token: str) -> bool:
        """Use a new bearer token; True when it changed."""
        return self.client.set_token(token)

    async def aclose(self) -> None:
        """Close connections."""
        await self.client.aclose()


def build(settings: EpcisAgentSettings, context: SinkContext) -> EpcisSink:
    """The sink for ``[epcis]``, with the timeouts and TLS of ``[sync]``."""
    ep, sc = settings.epcis, settings.sync
    capture = EpcisCaptureConfig(
        url=ep.url,
        document=EpcisConfig(
            read_point=ep.read_point,
            biz_location=ep.biz_location,
            cn20_uri_prefix=ep.cn20_uri_prefix,
            bill_uri_prefix=ep.bill_uri_prefix,
        ),
        content_type=ep.content_type,
        error_behaviour=cast(ErrorBehaviour, ep.error_behaviour),
        poll_initial_s=ep.poll_initial_s,
        poll_max_s=ep.poll_max_s,
        poll_timeout_s=ep.poll_timeout_s,
        max_rounds=ep.max_rounds,
        connect_timeout_s=sc.connect_timeout_s,
        read_timeout_s=sc.read_timeout_s,
        write_timeout_s=sc.write_timeout_s,
    )
    client = EpcisCaptureClient(
        capture, token=context.token, tls=build_ssl_context(sc), transport=context.transport
    )
    return EpcisSink(client, context.thread)


def names(settings: EpcisAgentSettings) -> SinkNames:
    """``the EPCIS repository (<epcis.url>)``, its token and where the token comes from."""
    ep = settings.epcis
    source = f"epcis.token_file ({ep.token_file})" if ep.token_file else f"${ep.token_env or '?'}"
    return SinkNames(f"the EPCIS repository ({ep.url})", "token", source)
