"""From a raw frame to a committed scan: parse, label, group-commit, answer.

The :class:`ScanIntake` is what every source submits to.  It parses the frame
(pure, never raises), refuses what is not a trace code and what the sync
sink has declared it cannot take (its ``Admission``: a scheme, a bill), labels
the rest with its action and bill, and hands it to the :class:`GroupCommitter`.  The answer
(:class:`scanner_agent.kernel.ScanOutcome`) is returned only after the transaction
holding the scan has committed, so a source's good-read signal is a promise
that the scan survives a crash.

Group commit: the committer takes every scan waiting when the writer becomes
free (up to ``max_rows``, lingering at most ``linger_s`` for more) and commits
them in one transaction on the outbox thread.  Under load the groups grow by
themselves, so throughput scales while one fsync is paid per group; at a
trickle each scan is committed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from scanner_agent.codes import ScanResult, Scheme, parse_many, parse_scan
from scanner_agent.kernel import OutboxError, OutboxFullError, RawScan, ScanOutcome, Verdict
from scanner_agent.outbox import (
    EnqueueResult,
    EnqueueStatus,
    NewScan,
    OutboxThread,
    RejectRecord,
    reason_label,
    uuid7_many,
)
from scanner_agent.parse_worker import ParseWorker

if TYPE_CHECKING:
    from scanner_agent.sync import Gate

log = logging.getLogger(__name__)


_SCHEME_TEXT = {scheme: scheme.value for scheme in Scheme}
"""A scheme's stored text (a dict lookup: ``Enum.value`` is a descriptor call per scan)."""

_EVERY_SCHEME: frozenset[str] = frozenset(_SCHEME_TEXT.values())
"""What is taken when no sink says otherwise."""


@dataclass
class _Pending:
    scans: list[NewScan]
    rejects: list[RejectRecord]
    future: asyncio.Future[list[EnqueueResult]]


class GroupCommitter:
    """Collects scans from all sources and commits them in groups."""

    def __init__(
        self,
        thread: OutboxThread,
        *,
        max_rows: int = 1024,
        linger_s: float = 0.0,
        reject_duplicates: bool = True,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self._thread = thread
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.max_rows = max_rows
        self.linger_s = linger_s
        self.reject_duplicates = reject_duplicates
        self._on_commit = on_commit
        self._next: list[_Pending] = []
        """Submissions taken off the queue but not yet committed: a group being gathered
        when the task is cancelled, or the one that would have overflowed the last group."""
        self.groups = 0
        """Transactions committed (for stats and benchmarks)."""
        self.rows = 0
        """Scans queued by those transactions."""

    async def submit(self, scan: NewScan) -> EnqueueResult:
        """Queue one scan; returns once its group has committed.

        Raises:
            OutboxFullError: no room (the whole group failed; nothing written).
            OutboxError: another storage failure.
        """
        return (await self.submit_many([scan]))[0]

    async def submit_many(
        self, scans: list[NewScan], rejects: list[RejectRecord] | None = None
    ) -> list[EnqueueResult]:
        """Queue scans (and refused scans for audit) that arrived together.

        They are committed in the same transaction; results come back in order
        once it has committed.
        """
        return await self.queue(scans, rejects)

    def queue(
        self, scans: list[NewScan], rejects: list[RejectRecord] | None = None
    ) -> asyncio.Future[list[EnqueueResult]]:
        """Put scans in the commit queue now; the future has their results once committed.

        Synchronous, so a caller knows its scans are queued (and where: groups
        commit in queue order) before it lets anything else run.
        """
        fut: asyncio.Future[list[EnqueueResult]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(scans, rejects or [], fut))
        return fut

    async def flush(self) -> None:
        """Return once everything submitted before this call has committed (or failed).

        A barrier in the queue: groups commit in queue order, so when this empty
        submission's group is done, so are all earlier ones.  Used before a bill
        closes, so scans routed to it while it was open are in it as it closes.
        """
        with contextlib.suppress(OutboxError):  # those scans were answered with the error
            await self.submit_many([], [])

    async def record_reject(self, reject: RejectRecord) -> None:
        """Keep a refused scan for audit, committed with the next group."""
        await self.submit_many([], [reject])

    async def run(self) -> None:
        """Commit groups until cancelled; on cancel, commit what is already queued."""
        try:
            while True:
                if not self._next:
                    self._next.append(await self._queue.get())
                await self._gather()
                await self._commit(self._take_group())
        except asyncio.CancelledError:
            await self.drain()
            raise

    async def drain(self) -> None:
        """Commit everything queued now (used at shutdown)."""
        while self._next or not self._queue.empty():
            if not self._next:
                self._next.append(self._queue.get_nowait())
            while not self._queue.empty() and not self._full():
                self._next.append(self._queue.get_nowait())
            await self._commit(self._take_group())

    async def _gather(self) -> None:
        """Take submissions into ``self._next`` until the group is full or the queue is idle.

        A group never exceeds ``max_rows`` (unless one submission alone does), so
        it fits the outbox's single-statement commit; the submission that would
        overflow it starts the next group.  Kept in ``self._next`` while
        gathering, so a cancel here loses nothing: :meth:`drain` commits it.
        """
        deadline = time.monotonic() + self.linger_s
        while not self._full():
            if not self._queue.empty():
                self._next.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                # asyncio.timeout, not wait_for, which on Python 3.11 can swallow a cancel.
                async with asyncio.timeout(remaining):
                    self._next.append(await self._queue.get())
            except TimeoutError:
                return

    def _full(self) -> bool:
        return sum(len(p.scans) for p in self._next) >= self.max_rows

    def _take_group(self) -> list[_Pending]:
        """The leading submissions of ``self._next`` that fit ``max_rows`` (at least one)."""
        size, n = 0, 0
        for p in self._next:
            if n and size + len(p.scans) > self.max_rows:
                break
            size += len(p.scans)
            n += 1
        group, self._next = self._next[:n], self._next[n:]
        return group

    async def _commit(self, group: list[_Pending]) -> None:
        scans = [s for p in group for s in p.scans]
        rejects = [r for p in group for r in p.rejects]
        try:
            results = await self._thread.call(
                self._thread.outbox.enqueue_many,
                scans,
                rejects,
                reject_duplicates=self.reject_duplicates,
            )
        except Exception as exc:  # every waiter must hear of the failure
            for p in group:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        self.groups += 1
        queued = sum(r.status is EnqueueStatus.QUEUED for r in results)
        pos = 0
        for p in group:
            n = len(p.scans)
            if not p.future.done():
                p.future.set_result(results[pos : pos + n])
            pos += n
        self.rows += queued
        if queued and self._on_commit is not None:
            self._on_commit(queued)


def _cheap(data: bytes) -> bool:
    """True for a frame the event loop may parse itself: 20 digits, a cn20 code's form
    (the parser's fast path, about a microsecond).  Every other frame, whose cost its
    sender chooses, is parsed on the parse thread (:mod:`scanner_agent.parse_worker`)."""
    return len(data) == 20 and data.isdigit()


def _display_code(result: ScanResult) -> str:
    text = result.code or result.text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)[:120]


@dataclass
class IntakeStats:
    """Counters since start, for status lines and the demo summary."""

    scanned: int = 0
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    """Refused scans by reason."""
    last_refused: RejectRecord | None = None
    """The last refused scan: read back from the outbox's refusals when the daemon starts
    (an aggregate, with its count), then each new one as it is refused."""


class ScanIntake:
    """The daemon's implementation of :class:`scanner_agent.kernel.Intake`."""

    def __init__(
        self,
        committer: GroupCommitter,
        *,
        device_id: str,
        bill_for: Callable[[str, str], str],
        default_action: str,
        listeners: list[Callable[[RawScan, ScanResult, ScanOutcome], None]] | None = None,
        admit: Callable[[str], Gate] | None = None,
    ) -> None:
        self._committer = committer
        self.device_id = device_id
        self._bill_for = bill_for
        """``(action, source_bill) -> bill`` (the open bill, or the default one)."""
        self.admit = admit
        """``bill -> Gate``: what the sink can take onto that bill (asked once per
        submission, before the commit); None takes every valid scan."""
        self.default_action = default_action
        self.stats = IntakeStats()
        self.listeners = listeners if listeners is not None else []
        """Called with every outcome (status, TUI stream); must not block."""
        self.full_alarm: str | None = None
        """Set while the outbox refuses scans for lack of space; cleared by the next commit."""
        self._turns: dict[tuple[str, str], asyncio.Future[None]] = {}
        """Per ``(source, device)``: done once its latest submission is in the commit queue."""
        self.parser: ParseWorker[ScanResult] = ParseWorker(parse_scan)
        """Parses every frame but a cn20 code off the event loop, fairly across connections."""

    def close(self) -> None:
        """Stop the parse thread once the frames queued for it are parsed (at shutdown)."""
        self.parser.close()

    async def submit(self, scan: RawScan, *, action: str = "", bill: str = "") -> ScanOutcome:
        """Parse, commit and answer one scan.  Never raises for bad input."""
        return (await self.submit_many([scan], action=action, bill=bill))[0]

    async def submit_many(
        self, scans: list[RawScan], *, action: str = "", bill: str = ""
    ) -> list[ScanOutcome]:
        """Parse, commit and answer scans that arrived together (one read of a socket).

        One group-commit entry for the lot keeps the per-scan cost low at high
        rates; outcomes come back in order, all after the commit.
        """
        frames = [s.data for s in scans]
        key = (scans[0].source, scans[0].device) if scans else ("", "")
        # A device's scans reach the commit queue in the order they were read, so its
        # capture order (the outbox's seq, what `bill undo` takes last) is the read order
        # even when a costly frame is parsed on the thread and a cn20 code behind it is not.
        ahead = self._turns.get(key)
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._turns[key] = turn
        try:
            if all(_cheap(f) for f in frames):
                parsed = parse_many(frames)
            else:  # off the loop, taking turns with the other connections (one per device)
                parsed = await self.parser.parse(key, frames)
            if ahead is not None and not ahead.done():
                await asyncio.shield(ahead)
            queued = self._route_and_queue(scans, parsed, action, bill)
        finally:
            turn.set_result(None)
            if self._turns.get(key) is turn:
                del self._turns[key]
        return await self._answer(scans, parsed, *queued)

    def _route_and_queue(
        self, scans: list[RawScan], parsed: list[ScanResult], action: str, bill: str
    ) -> tuple[list[NewScan], list[ScanOutcome | int], asyncio.Future[list[EnqueueResult]]]:
        """Label the parsed scans, NAK what the sink would refuse, queue the rest to commit.

        No await from here to the committer's queue: the bill is the one open
        *now*, so a bill that closes (``BillDesk.close`` flushes the committer
        first) never gets a scan after it closed.
        """
        action = action or self.default_action
        bill_name = self._bill_for(action, bill)
        # What the sink can take onto this bill, decided once for the lot: a scan it
        # would refuse when sending is NAKed now, with its reason, and never ACKed.
        gate = self.admit(bill_name) if self.admit is not None else None
        takes = gate.takes if gate is not None else _EVERY_SCHEME
        # One id per frame, drawn at once; those of refused frames are simply not used.
        ids = iter(uuid7_many(len(scans)))
        device_id = self.device_id
        new: list[NewScan] = []
        make_scan = NewScan._make
        rejects: list[RejectRecord] = []
        slots: list[ScanOutcome | int] = []
        last_at: datetime | None = None  # frames of one read usually share a capture time
        scanned_at = ""
        for scan, result in zip(scans, parsed, strict=True):
            event_id = next(ids)
            if scan.scanned_at is not last_at:
                last_at = scan.scanned_at
                scanned_at = last_at.isoformat(timespec="milliseconds")
            code, scheme = result.code, result.scheme
            if not result.valid or code is None or scheme is None or scheme not in takes:
                shown = _display_code(result)
                if gate is not None and result.valid and code is not None and scheme is not None:
                    reason = gate.reason(scheme)
                else:
                    reason = result.reason or "not a trace code"
                rejects.append(
                    RejectRecord(
                        raw=result.raw,
                        code=shown,
                        reason=reason,
                        verdict=Verdict.INVALID.value,
                        device_id=scan.device or device_id,
                        source=scan.source,
                        scanned_at=scanned_at,
                    )
                )
                slots.append(ScanOutcome(Verdict.INVALID, shown, reason))
                continue
            slots.append(len(new))
            expiry = result.expiry
            # In NewScan's field order, through _make (tuple.__new__, half the cost of the
            # named tuple's Python-level __new__): this line runs once per scan.
            new.append(
                make_scan(
                    (
                        event_id,
                        code,
                        _SCHEME_TEXT[scheme],
                        result.raw,
                        result.symbology,
                        action,
                        bill_name,
                        device_id,
                        scan.source,
                        scanned_at,
                        result.product,
                        result.gtin,
                        result.batch,
                        expiry.isoformat() if expiry else None,
                        result.serial,
                    )
                )
            )
        return new, slots, self._committer.queue(new, rejects)

    async def _answer(
        self,
        scans: list[RawScan],
        parsed: list[ScanResult],
        new: list[NewScan],
        slots: list[ScanOutcome | int],
        committed: asyncio.Future[list[EnqueueResult]],
    ) -> list[ScanOutcome]:
        """Await the commit and turn its results into one outcome per frame, in order."""
        failure: ScanOutcome | None = None
        results: list[EnqueueResult] = []
        try:
            results = await committed
        except OutboxFullError as exc:
            if self.full_alarm is None:
                log.error("ALARM: outbox full, scans are refused until space returns: %s", exc)
            self.full_alarm = f"outbox full: {exc}"
            failure = ScanOutcome(Verdict.FULL, "", "outbox full")
        except OutboxError as exc:
            log.error("scans refused, outbox error: %s", exc)
            failure = ScanOutcome(Verdict.ERROR, "", "storage error")
        else:
            if self.full_alarm is not None and new:
                log.warning("outbox has room again; scans are accepted")
                self.full_alarm = None
        outcomes: list[ScanOutcome] = []
        append = outcomes.append
        accepted, duplicate = Verdict.ACCEPTED, EnqueueStatus.DUPLICATE
        make_outcome = ScanOutcome._make  # see make_scan
        for slot in slots:
            if isinstance(slot, ScanOutcome):
                append(slot)
                continue
            code = new[slot].code
            if failure is not None:
                append(ScanOutcome(failure.verdict, code, failure.reason))
                continue
            res = results[slot]
            if res.status is duplicate:
                append(ScanOutcome(Verdict.DUPLICATE, code, "duplicate scan", seq=res.seq))
            else:
                append(make_outcome((accepted, code, None, res.event_id, res.seq)))
        self._account(scans, parsed, outcomes)
        return outcomes

    def _refusal(self, scan: RawScan, result: ScanResult, outcome: ScanOutcome) -> RejectRecord:
        """One refusal as kept for ``status`` (one per submission: only the last counts)."""
        return RejectRecord(
            raw=result.raw,
            code=outcome.code,
            reason=outcome.reason or outcome.verdict.value,
            verdict=outcome.verdict.value,
            device_id=scan.device or self.device_id,
            source=scan.source,
            scanned_at=scan.scanned_at.isoformat(timespec="milliseconds"),
        )

    def _account(
        self, scans: list[RawScan], parsed: list[ScanResult], outcomes: list[ScanOutcome]
    ) -> None:
        stats = self.stats
        stats.scanned += len(outcomes)
        last = -1
        for i, outcome in enumerate(outcomes):
            if outcome.verdict is Verdict.ACCEPTED:
                stats.accepted += 1
            else:
                stats.refused[reason_label(outcome.reason or outcome.verdict.value)] += 1
                last = i
        if last >= 0:
            stats.last_refused = self._refusal(scans[last], parsed[last], outcomes[last])
        if not self.listeners:
            return
        for scan, result, outcome in zip(scans, parsed, outcomes, strict=True):
            for listener in self.listeners:
                try:
                    listener(scan, result, outcome)
                except Exception:
                    log.exception("scan listener failed")
