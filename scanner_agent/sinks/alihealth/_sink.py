"""The 码上放心 sink of the sync loop: one closed bill per batch, uploaded as one bill.

How the sync loop's notions map onto the platform:

* **Batch** = every pending scan of one bill (:func:`lease_bill`).  Open bills
  are never leased (the outbox holds them back), so only closed bills go out:
  the platform takes a bill number once.
* **Admission** (:func:`alihealth_admission`, the sink's ``admission``): what
  the platform can take at all, asked by the intake before a scan is committed,
  so a GS1 or MA code, a scan with no bill open or a bill without its parties
  is NAKed at the scanner with the reason.
* **Encoding** (on the outbox thread) reads the bill (type, parties, close
  time, its optional platform parameters) through :class:`BillBook`, places each
  code in its sub-bill by the recorded upload plan (``_ledger``), and refuses,
  with a reason the operator sees in ``queue ls --state rejected``, what cannot
  be uploaded: what the admission rule refuses (rows queued before it applied,
  with the same reason) and scans added to a bill after its upload began.
* **Verdicts** per sub-bill, applied to each of its scans: ``SUCCESS`` is
  accepted, 该单据号已存在 (our own earlier upload whose reply was lost) is a
  duplicate, both delivered; ``FAIL`` and a gateway refusal of the call are
  rejected with the platform's message.  A rate limit (error 7), a refused
  signature, a problem of the site rather than the bill (the box's clock, the
  IP whitelist, permissions, the app key: held with an alarm until fixed), or
  an unreachable gateway raise the sync errors, so the whole bill is retried
  (sub-bills already accepted then answer 该单据号已存在) or syncing pauses until
  the secret is replaced.
* **Platform processing** is asynchronous: after an upload the sink asks for
  the bill's ``deal_status`` in the background and records it in ``bill_log``.
  A bill the platform failed to process (``deal_status`` 4) raises an alarm
  (:meth:`AliHealthSink.alarms`, shown in ``status`` and the TUI) until an
  operator acknowledges it (``scanner-agent bill ack``); ``scanner-agent bill
  failed`` lists them.  The alarm survives a restart: it is read back from
  ``bill_log`` at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from scanner_agent.bills import BillBook, BillError, bill_types
from scanner_agent.kernel import BatchRejectedError, ScannerAgentError, SyncError, backoff_delay
from scanner_agent.outbox import Batch, EventResult, Outbox, lease_bill
from scanner_agent.sinks.alihealth._client import AliHealthClient, AliHealthConfig
from scanner_agent.sinks.alihealth._ledger import (
    STATUS_EVENT,
    PlatformFailure,
    UploadPlan,
    acknowledge_failures,
    append_log,
    platform_failures,
    status_detail,
    upload_plan,
)
from scanner_agent.sinks.alihealth._protocol import (
    GMT8,
    Api,
    BillUpload,
    SignMethod,
    UploadResult,
)
from scanner_agent.sync import Admission, SinkContext, SinkNames

if TYPE_CHECKING:
    from scanner_agent.outbox import OutboxThread
    from scanner_agent.sinks.alihealth._settings import AliHealthAgentSettings

__all__ = ["AliHealthSink", "BillPayload", "alihealth_admission", "build", "names"]

log = logging.getLogger(__name__)

_ACCEPTED = EventResult("accepted", None)


@dataclass(frozen=True, slots=True)
class BillPayload:
    """What :meth:`AliHealthSink.encode` prepared for one leased bill."""

    bill: str
    uploads: tuple[tuple[BillUpload, tuple[str, ...]], ...] = ()
    """Each (sub-)bill to upload with the event ids of its scans."""
    refused: dict[str, str] = field(default_factory=dict)
    """Event id -> why it cannot be uploaded (a dead letter with that reason)."""


class AliHealthSink:
    """Delivers closed bills to the 码上放心 gateway (see the module docstring).

    ``status_poll_s`` is the wait before the first ``deal_status`` query of an
    uploaded bill (0: never ask); the wait doubles up to ``status_polls`` queries.
    """

    def __init__(
        self,
        thread: OutboxThread,
        client: AliHealthClient,
        *,
        ent_id: str = "",
        status_poll_s: float = 30.0,
        status_polls: int = 10,
    ) -> None:
        self._thread = thread
        self._client = client
        self.admission = alihealth_admission(ent_id)
        """What 码上放心 takes (the intake asks it before a scan is committed)."""
        self._status_poll_s = status_poll_s
        self._status_polls = status_polls
        self._polls: set[asyncio.Task[None]] = set()
        self._failures: dict[tuple[str, str], PlatformFailure] = {}
        """(bill, sub-bill number) -> a processing failure not yet acknowledged."""

    def __repr__(self) -> str:
        return f"AliHealthSink({self._client.cfg!r})"

    # -- the Sink protocol -----------------------------------------------------

    def lease(self, outbox: Outbox, limit: int, *, lease_s: float, max_bytes: int) -> Batch | None:
        """Every pending scan of the next closed bill (``limit`` only bounds default bills)."""
        return lease_bill(outbox, lease_s=lease_s, other_limit=limit)

    def encode(self, batch: Batch) -> BillPayload:
        """Outbox thread: the bill's sub-bill uploads and the scans refused locally.

        Raises:
            ValueError: the batch spans several bills or its bill cannot be read.
        """
        bills = {e.bill for e in batch.events}
        if len(bills) != 1:
            raise ValueError(f"batch {batch.batch_id} holds {len(bills)} bills, not one")
        number = bills.pop()
        outbox = self._thread.outbox
        try:
            bill = BillBook(outbox).get(number)
        except BillError as exc:
            raise ValueError(str(exc)) from exc
        # The admission rule the intake applied at the scanner, applied again: rows
        # queued before it applied (another sync.protocol) get the reason a NAK would have.
        admission = self.admission
        opened = bill if bill.type is not None else None
        bill_problem = admission.bill_problem(number, opened)
        refused: dict[str, str] = {}
        plan = None
        if bill_problem is None:
            plan = upload_plan(outbox, number, self._client.cfg.max_codes)
        by_part: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for e in batch.events:
            why = admission.refusal(e.scheme, bill_problem)
            if why is not None:
                refused[e.event_id] = why
                continue
            part = plan.part_of(e.code) if plan is not None else None
            if plan is None or part is None or e.seq > plan.max_seq:
                refused[e.event_id] = (
                    f"scanned onto bill {number} after its upload to 码上放心 began; "
                    "a bill number is taken once, so scan it on a new bill"
                )
                continue
            by_part[part.number].append((e.code, e.event_id))
        if not by_part:
            return BillPayload(number, refused=refused)
        assert bill.type is not None  # no bill problem: it was opened with a type
        from_id, to_id = admission.parties_of(bill)
        # The bill's own optional parameters (bill open ``params``); the client adds
        # alihealth.extra under them.  Read on every attempt: they never change after open.
        extra = BillBook(outbox).platform_params(number)
        when = _parse_time(bill.closed_at) or datetime.now(UTC)
        uploads = tuple(
            (
                BillUpload(
                    bill_code=part,
                    bill_time=when,
                    bill_type=bill.type,
                    from_user_id=from_id,
                    to_user_id=to_id,
                    codes=tuple(sorted({code for code, _ in scans})),
                    extra=extra,
                ),
                tuple(event_id for _, event_id in scans),
            )
            for part, scans in sorted(by_part.items(), key=lambda kv: _part_key(plan, kv[0]))
        )
        return BillPayload(number, uploads, refused)

    async def send_batch(self, batch: Batch, body: Any) -> dict[str, EventResult]:
        """Upload the bill's (sub-)bills; one verdict per scan.

        Raises:
            RateLimitedError: error 7 App Call Limited (``retry_after`` from the ban).
            AuthError: the signature was refused (the app secret).
            SiteProblemError: the site's clock (``ClockSkewError``), IP whitelist,
                permissions or app key were refused: the bill is held, not refused.
            TransientSyncError: network failure, timeout, gateway unavailable.
            ProtocolError: a reply of the wrong shape.
        """
        if not isinstance(body, BillPayload):
            body = await self._thread.call(self.encode, batch)
        results = {event_id: EventResult("rejected", why) for event_id, why in body.refused.items()}
        outcomes: list[UploadResult] = []
        try:
            for upload, event_ids in body.uploads:
                try:
                    outcome = await self._client.upload_part(upload)
                except BatchRejectedError as exc:
                    # The gateway refused this call (a bad parameter): this sub-bill only.
                    outcome = UploadResult(upload.bill_code, "rejected", "error_response", str(exc))
                outcomes.append(outcome)
                verdict = _verdict(outcome)
                results.update(dict.fromkeys(event_ids, verdict))
        except SyncError:
            await self._record(body.bill, outcomes)
            raise
        await self._record(body.bill, outcomes)
        self._watch(body, outcomes)
        return results

    def set_token(self, token: str) -> bool:
        """Sign with a new app secret (the loop's credential); True when it changed."""
        return self._client.set_secret(token)

    async def aclose(self) -> None:
        """Stop status polling and close connections."""
        polls = list(self._polls)
        for task in polls:
            task.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
        await self._client.aclose()

    # -- processing failures (alarms) -----------------------------------------------

    async def load_alarms(self) -> None:
        """Read the unacknowledged processing failures back from ``bill_log`` (at start).

        Raises:
            ScannerAgentError: the outbox cannot be read.
        """
        found = await self._thread.call(platform_failures, self._thread.outbox)
        self._failures = {(f.bill, f.number): f for f in found}

    def alarms(self) -> list[str]:
        """One alarm for the bills the platform failed to process, or none."""
        if not self._failures:
            return []
        bills = sorted({bill for bill, _number in self._failures})
        if len(bills) == 1:
            details = "; ".join(f.detail for f in self._failures.values())
            return [
                f"码上放心 failed to process bill {bills[0]} ({details}); the scans stay "
                f"delivered: fix it on the platform or on a new bill, then "
                f"`scanner-agent bill ack {bills[0]}`"
            ]
        named = ", ".join(bills[:5]) + (f" and {len(bills) - 5} more" if len(bills) > 5 else "")
        return [
            f"码上放心 failed to process {len(bills)} bills ({named}): `scanner-agent bill "
            f"failed` lists them with the platform's reasons; `scanner-agent bill ack BILL` "
            f"clears one"
        ]

    async def acknowledge(self, bill: str, note: str) -> list[PlatformFailure]:
        """Record that an operator handled ``bill``'s processing failures; the ones cleared.

        Raises:
            ScannerAgentError: the outbox cannot be written.
        """
        cleared = await self._thread.call(acknowledge_failures, self._thread.outbox, bill, note)
        for key in [k for k in self._failures if k[0] == bill]:
            del self._failures[key]
        return cleared

    # -- records and status polling ----------------------------------------------

    async def _record(self, bill: str, outcomes: list[UploadResult]) -> None:
        """Each sub-bill's verdict in ``bill_log`` (a failure to write is logged, not raised)."""
        if not outcomes:
            return
        entries = [
            (bill, "upload", f"{o.bill_code}: {o.status} {o.msg_code} {o.message}".strip())
            for o in outcomes
        ]
        try:
            await self._thread.call(append_log, self._thread.outbox, entries)
        except ScannerAgentError as exc:
            log.warning("码上放心: could not record the upload of bill %s: %s", bill, exc)

    def _watch(self, body: BillPayload, outcomes: list[UploadResult]) -> None:
        if self._status_poll_s <= 0:
            return
        numbers = [o.bill_code for o in outcomes if o.status != "rejected"]
        if not numbers:
            return
        when = body.uploads[0][0].bill_time
        task = asyncio.create_task(
            self._poll(body.bill, numbers, when), name=f"码上放心 status {body.bill}"
        )
        self._polls.add(task)
        task.add_done_callback(self._polls.discard)

    async def _poll(self, bill: str, numbers: list[str], when: datetime) -> None:
        """Ask how the platform processed each sub-bill until it says, and record it."""
        day = when.astimezone(GMT8).date()
        begin = (day - timedelta(days=1)).isoformat()
        end = (datetime.now(GMT8).date() + timedelta(days=1)).isoformat()
        waiting = list(numbers)
        for attempt in range(self._status_polls):
            await asyncio.sleep(backoff_delay(attempt, self._status_poll_s, math.inf))
            entries = []
            failed: list[PlatformFailure] = []
            for number in list(waiting):
                try:
                    states = await self._client.bill_status(number, begin_date=begin, end_date=end)
                except (ScannerAgentError, ValueError) as exc:
                    log.debug("码上放心: status of bill %s not known yet: %s", number, exc)
                    continue
                state = next((s for s in states if s.bill_code == number), None)
                if state is None or not (state.done or state.failed):
                    continue
                waiting.remove(number)
                detail = status_detail(number, state.deal_status, state.message)
                entries.append((bill, STATUS_EVENT, detail))
                if state.failed:
                    log.error(
                        "ALARM: 码上放心: the platform failed to process bill %s: %s",
                        number,
                        detail,
                    )
                    failed.append(
                        PlatformFailure(bill, number, datetime.now(UTC).isoformat(), detail)
                    )
            if entries:
                with contextlib.suppress(ScannerAgentError):
                    await self._thread.call(append_log, self._thread.outbox, entries)
            # Alarmed once recorded: `bill failed` (which reads bill_log) then lists what
            # the alarm names.
            for failure in failed:
                self._failures[(failure.bill, failure.number)] = failure
            if not waiting:
                return
        with contextlib.suppress(ScannerAgentError):
            await self._thread.call(
                append_log,
                self._thread.outbox,
                [
                    (
                        bill,
                        STATUS_EVENT,
                        f"{n}: no final deal_status after {self._status_polls} queries",
                    )
                    for n in waiting
                ],
            )


def build(settings: AliHealthAgentSettings, context: SinkContext) -> AliHealthSink:
    """The sink for ``[alihealth]``, signing with the app secret in ``context.token``."""
    ali = settings.alihealth
    client = AliHealthClient(
        AliHealthConfig(
            app_key=ali.app_key,
            secret=context.token,
            ref_user_id=ali.ref_user_id,
            gateway_url=ali.url,
            api=cast(Api, ali.api),
            sign_method=cast(SignMethod, ali.sign_method),
            oper_ic_code=ali.oper_ic_code,
            oper_ic_name=ali.oper_ic_name,
            physic_type=ali.physic_type,
            max_codes=ali.max_codes,
            timeout_s=ali.timeout_s,
            status_api=ali.status_api,
            extra=dict(ali.extra),
        ),
        transport=context.transport,
    )
    return AliHealthSink(
        context.thread,
        client,
        ent_id=ali.ent_id,
        status_poll_s=ali.status_poll_s,
        status_polls=ali.status_polls,
    )


def names(settings: AliHealthAgentSettings) -> SinkNames:
    """``码上放心 (<alihealth.url>)``, its app key or secret, and the secret's file."""
    ali = settings.alihealth
    return SinkNames(
        f"码上放心 ({ali.url})",
        "app key or secret",
        f"alihealth.app_secret_file ({ali.app_secret_file})",
    )


def alihealth_admission(ent_id: str) -> Admission:
    """What 码上放心 can take: 20-digit trace codes on an opened bill naming both parties.

    The platform takes bills only (``uploadinoutbill``), of its own bill types
    (``bill_types.toml``: 1xx into stock, 2xx out of stock, 3xx use), with the
    shipping and receiving enterprises' ``ent_id``; ``ent_id`` (``alihealth.ent_id``)
    is this enterprise's side.  Its codes are 20 digits starting with 8, which is
    exactly the ``cn20`` scheme (:func:`~._protocol.is_trace_code`).
    """
    return Admission(
        platform="码上放心",
        schemes=frozenset({"cn20"}),
        takes="20-digit trace codes",
        bill_required=True,
        bill_families=frozenset(code // 100 for code in bill_types()),
        parties=frozenset({"from", "to"}),
        own_party=ent_id,
        party_id="ent_id",
        own_party_setting="alihealth.ent_id",
    )


def _verdict(outcome: UploadResult) -> EventResult:
    if outcome.status == "accepted":
        return _ACCEPTED
    text = f"{outcome.msg_code} {outcome.message}".strip()
    if outcome.status == "duplicate":
        return EventResult("duplicate", f"码上放心 bill {outcome.bill_code}: {text}")
    return EventResult("rejected", f"码上放心 refused bill {outcome.bill_code}: {text}")


def _part_key(plan: UploadPlan | None, number: str) -> int:
    """Sub-bills in plan order (``-2`` before ``-10``)."""
    if plan is None:
        return 0
    return next((i for i, p in enumerate(plan.parts) if p.number == number), 0)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
