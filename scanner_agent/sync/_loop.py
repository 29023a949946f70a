"""The sync loop: lease batches, send them, settle them; back off on failure.

It never blocks scanning: it only talks to the outbox through the outbox
thread, and a dead service just grows the backlog.

Pipelining: while a backlog exists, up to ``sync.max_in_flight`` batches are
awaiting the service at once.  Batches are leased in capture order (the
outbox hands out the oldest rows first) and settled in whatever order their
replies come back.  After any failure the window drops to one batch (a probe)
and nothing new is leased until the backoff has passed; the first success
opens it again.

State is only changed on the event loop, and the link state follows the most
recently *started* request that has finished, so a slow reply to an old
request never overrides what a newer one found out.  Link state, counters and
the recent rejections are kept for status lines and the TUI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine
from typing import Any

from scanner_agent.kernel import (
    AuthError,
    BatchRejectedError,
    BatchTooLargeError,
    ConfigError,
    ProtocolError,
    ScannerAgentError,
    TransientSyncError,
)
from scanner_agent.outbox import Batch, EventResult, OutboxThread, RowState, SettleSummary
from scanner_agent.status import SyncStatus
from scanner_agent.sync._http import NetworkError
from scanner_agent.sync._link import LinkBook
from scanner_agent.sync._settings import LoopSettings
from scanner_agent.sync._sinks import Sink
from scanner_agent.sync._stats import LinkState, SyncStats

log = logging.getLogger(__name__)


class SyncLoop(LinkBook):
    """Drains the outbox to the trace service, through a :class:`Sink` for its protocol.

    ``client`` is the sink: a :class:`~scanner_agent.sinks.trace_api.TraceApiClient` for
    Trace API v1, or a platform's (``docs/platforms.md``).  ``token_reader``
    gives the current token (default: ``cfg.read_token``; the daemon passes the
    sink's credential); it is read again every ``cfg.token_poll_s`` while the
    service refuses the token, and by :meth:`reload`.

    ``platform``, ``credential`` and ``credential_source`` name the sink's side in
    the alarm raised when the credential is refused, so the operator knows which
    service said no and which file to replace (``"码上放心 (<url>)"``, ``"app
    key or secret"``, ``"alihealth.app_secret_file (<path>)"``).
    """

    def __init__(
        self,
        thread: OutboxThread,
        client: Sink,
        cfg: LoopSettings,
        *,
        rng: random.Random | None = None,
        token_reader: Callable[[], str] | None = None,
        platform: str = "the trace service",
        credential: str = "token",
        credential_source: str = "the token file or variable",
    ) -> None:
        self._thread = thread
        self.platform = platform
        self.credential = credential
        self.credential_source = credential_source
        self._client = client
        self.cfg = cfg
        self.state = LinkState.UNKNOWN
        self.stats = SyncStats(batch_limit=cfg.batch_size)
        self._rng = rng or random.Random()
        self._token_reader = token_reader if token_reader is not None else cfg.read_token
        self._changed = asyncio.Event()
        self._generation = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._awaiting: set[str] = set()
        """Batches whose reply is awaited now (the window counts these)."""
        self._window = 1
        self._resume_at = 0.0
        self._failures = 0
        self._next_epoch = 0
        self._state_epoch = -1
        self._batch_limit = cfg.batch_size
        self._last_kind: str | None = None
        self._token_problem: str | None = None
        self._site_alarm = False
        """``stats.alarm`` is a site problem's (clock, permissions ...): cleared by a success."""
        self._next_token_poll = 0.0
        # A batch must not come back from its lease while its reply can still arrive.
        self._lease_s = max(
            cfg.lease_s,
            cfg.connect_timeout_s + cfg.write_timeout_s + cfg.read_timeout_s + 5.0,
        )

    # -- hooks for the daemon ------------------------------------------------

    def wake(self, _count: int = 0) -> None:
        """Tell the loop new scans were committed (called after each group commit)."""
        self._signal()

    def set_token(self, token: str) -> bool:
        """Use a new token; resume syncing if it was paused on a refused token.

        Returns True when the token differs from the one in use.
        """
        changed = self._client.set_token(token)
        if self.state is LinkState.AUTH_FAILED:
            self._resume("token replaced" if changed else "token set again")
        return changed

    def reload(self) -> bool:
        """Read the token file or variable again (e.g. on SIGHUP) and resume if paused.

        Returns True when the token changed.

        Raises:
            ConfigError: the token file or variable cannot be read.
        """
        return self.set_token(self._token_reader())

    def snapshot(self) -> SyncStatus:
        """Link state and counters now, as the status holds them (``Daemon.status()['sync']``
        is its JSON form)."""
        return self.stats.snapshot(self.state)

    # -- the loop ------------------------------------------------------------

    async def run(self) -> None:
        """Sync until cancelled."""
        if not self.cfg.enabled:
            self.state = LinkState.DISABLED
            await asyncio.Event().wait()
        await self._release_leftovers()
        try:
            while True:
                await self._step()
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _step(self) -> None:
        """Decide once: wait (paused, backing off, window full, idle) or lease and send a batch."""
        generation = self._generation
        loop = asyncio.get_running_loop()
        if self.state is LinkState.AUTH_FAILED:
            due = self._next_token_poll - loop.time()
            if due > 0:
                await self._wait_change(generation, due)
                return
            self._next_token_poll = loop.time() + self.cfg.token_poll_s
            self._poll_token()
            return
        delay = self._resume_at - loop.time()
        if delay > 0:
            await self._wait_change(generation, delay)
            return
        if len(self._awaiting) >= self._window:
            await self._wait_change(generation, None)
            return
        try:
            prepared = await self._thread.call(self._prepare, self._batch_limit)
        except ScannerAgentError as exc:
            self._failed(self._next_epoch, exc, LinkState.DEGRADED, f"outbox: {exc}")
            return
        except Exception as exc:  # a bug: keep syncing (with backoff) rather than die silently
            log.exception("sync: unexpected error leasing a batch")
            self._failed(self._next_epoch, exc, LinkState.DEGRADED, f"lease: {exc!r}")
            return
        if prepared is None:
            await self._wait_change(generation, self.cfg.idle_poll_s)
            return
        batch, body = prepared
        if batch.batch_id in self._awaiting:
            # Its lease ran out while the reply is still awaited here: the lease call
            # renewed it, and the sender already on it settles or releases it.
            return
        epoch = self._next_epoch
        self._next_epoch += 1
        self._awaiting.add(batch.batch_id)
        self.stats.in_flight = len(self._awaiting)
        task = asyncio.create_task(self._deliver(batch, body, epoch), name=f"sync {batch.batch_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Encoding a batch (JSON, gzip) runs on the outbox thread right after its lease.
    # Run on the event loop's thread instead, it competes with the outbox's SQLite
    # calls for the GIL, and every row of those then waits for the interpreter:
    # measured, a busy second thread made leases and settles several times slower.

    def _prepare(self, limit: int) -> tuple[Batch, Any] | None:
        """Outbox thread: lease the next batch and encode its request body."""
        outbox = self._thread.outbox
        batch = self._client.lease(
            outbox, limit, lease_s=self._lease_s, max_bytes=self.cfg.batch_bytes
        )
        if batch is None:
            return None
        try:
            return batch, self._client.encode(batch)
        except ValueError as exc:  # e.g. text that cannot be UTF-8: give it back, back off
            outbox.release(batch.batch_id, f"cannot encode: {exc}")
            raise ProtocolError(f"Failed to encode batch {batch.batch_id}: {exc}") from exc

    def _settle_now(
        self, batch: Batch, results: dict[str, EventResult]
    ) -> tuple[SettleSummary, dict[str, str]]:
        """Outbox thread: record the verdicts (raises ValueError if settled meanwhile)."""
        summary = self._thread.outbox.settle(batch.batch_id, results)
        return summary, (_reasons(results) if summary.rejected else {})

    def _signal(self) -> None:
        self._generation += 1
        self._changed.set()

    async def _wait_change(self, since: int, seconds: float | None) -> None:
        """Wait for a change after generation ``since`` (new scans, a batch done, a hook)."""
        if self._generation != since:
            return
        self._changed.clear()
        # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a cancel that
        # arrives as the event is set, and the loop then waited forever at shutdown.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._changed.wait()

    async def _release_leftovers(self) -> None:
        """Batches leased by a previous run that ended mid-send go out again now, unchanged."""
        outbox = self._thread.outbox

        def leftover_batches() -> list[str]:
            found: dict[str, None] = {}
            after = 0
            while True:
                rows = outbox.rows(state=RowState.IN_FLIGHT.value, after_seq=after, limit=5000)
                if not rows:
                    return list(found)
                for row in rows:
                    if row.batch_id:
                        found[row.batch_id] = None
                after = rows[-1].seq

        try:
            batch_ids = await self._thread.call(leftover_batches)
            for batch_id in batch_ids:
                await self._thread.call(
                    outbox.release, batch_id, "in flight when the agent stopped"
                )
        except ScannerAgentError as exc:
            log.warning("sync: could not release batches left in flight: %s", exc)
            return
        if batch_ids:
            log.info(
                "sync: %d batches left in flight by the last run will be sent again", len(batch_ids)
            )

    # -- one batch -----------------------------------------------------------

    async def _deliver(self, batch: Batch, body: Any, epoch: int) -> None:
        """Send one batch and record the outcome; never raises (but for cancellation)."""
        try:
            try:
                results = await self._client.send_batch(batch, body)
            finally:
                # Before any outbox call below: a released batch must be leasable again.
                self._replied(batch)
        except BatchTooLargeError as exc:
            await self._guarded(batch, epoch, self._too_large(batch, epoch, exc))
            return
        except BatchRejectedError as exc:
            # The service refuses the batch as a whole: dead letters, re-sendable by hand.
            # Paced like a failure, so a misconfigured URL cannot burn through the backlog.
            self._failed(epoch, exc, LinkState.DEGRADED, f"{exc}; batch moved to dead letters")
            await self._guarded(batch, epoch, self._dead_letter(batch, str(exc)))
            return
        except AuthError as exc:
            self._failed(epoch, exc, LinkState.AUTH_FAILED, str(exc))
            await self._guarded(batch, epoch, self._release(batch, str(exc)))
            return
        except (TransientSyncError, ProtocolError) as exc:
            # A bad reply marks nothing: the batch goes again later, the replay answers the same.
            state = LinkState.OFFLINE if isinstance(exc, NetworkError) else LinkState.DEGRADED
            self._failed(epoch, exc, state, str(exc))
            await self._guarded(batch, epoch, self._release(batch, str(exc)))
            return
        except asyncio.CancelledError:
            # Stopping: give the batch back so the next run sends it again at once.
            with contextlib.suppress(Exception):
                await self._release(batch, "agent stopping")
            raise
        except Exception as exc:  # a bug in the client: never kill the loop over it
            log.exception("sync: unexpected error sending batch %s", batch.batch_id)
            self._failed(epoch, exc, LinkState.DEGRADED, f"batch {batch.batch_id}: {exc!r}")
            await self._guarded(batch, epoch, self._release(batch, repr(exc)))
            return
        await self._guarded(batch, epoch, self._settle(batch, epoch, results))

    def _replied(self, batch: Batch) -> None:
        self._awaiting.discard(batch.batch_id)
        self.stats.in_flight = len(self._awaiting)
        self._signal()

    async def _guarded(self, batch: Batch, epoch: int, work: Coroutine[Any, Any, None]) -> None:
        """Run outbox bookkeeping for ``batch``; an outbox failure backs off, never escapes."""
        try:
            await work
        except ScannerAgentError as exc:
            self._failed(epoch, exc, LinkState.DEGRADED, f"outbox, batch {batch.batch_id}: {exc}")
            with contextlib.suppress(Exception):
                await self._release(batch, str(exc))
        finally:
            self._signal()

    async def _release(self, batch: Batch, error: str) -> None:
        await self._thread.call(self._thread.outbox.release, batch.batch_id, error)

    async def _dead_letter(self, batch: Batch, reason: str) -> None:
        n = await self._thread.call(self._thread.outbox.dead_letter_batch, batch.batch_id, reason)
        self._rejected(batch, dict.fromkeys((e.event_id for e in batch.events), reason), n)

    async def _settle(self, batch: Batch, epoch: int, results: dict[str, EventResult]) -> None:
        try:
            summary, reasons = await self._thread.call(self._settle_now, batch, results)
        except ValueError as exc:
            # Its rows were settled some other way meanwhile: nothing left to record.
            log.warning("sync: %s", exc)
            return
        self._succeeded(epoch)
        self.stats.batches += 1
        self.stats.delivered += summary.accepted + summary.duplicate
        self.stats.duplicate += summary.duplicate
        if summary.rejected:
            self._rejected(batch, reasons, summary.rejected)

    async def _too_large(self, batch: Batch, epoch: int, exc: BatchTooLargeError) -> None:
        """413: the service stored nothing; send the same rows again in halves (new batch ids)."""
        outbox = self._thread.outbox
        if len(batch.events) <= 1:
            self._failed(
                epoch, exc, LinkState.DEGRADED, f"{exc}; a single scan, moved to dead letters"
            )
            await self._dead_letter(batch, str(exc))
            return
        self._batch_limit = min(self._batch_limit, max(1, len(batch.events) // 2))
        self.stats.batch_limit = self._batch_limit
        self._note(epoch, exc, LinkState.DEGRADED, f"{exc}; batch size now {self._batch_limit}")
        await self._thread.call(outbox.unbatch, batch.batch_id)

    # -- a refused token -----------------------------------------------------

    def _poll_token(self) -> None:
        """While paused on a refused token: resume when the token file or variable changes."""
        try:
            token = self._token_reader()
        except ConfigError as exc:
            if str(exc) != self._token_problem:
                log.warning("sync: %s", exc)
                self._token_problem = str(exc)
            return
        self._token_problem = None
        if self._client.set_token(token):
            self._resume("token changed")

    def _resume(self, why: str) -> None:
        log.info("sync: %s; syncing resumes", why)
        self.state = LinkState.UNKNOWN
        self.stats.alarm = None
        self._site_alarm = False
        self._state_epoch = self._next_epoch  # outcomes of requests sent before are stale
        self._window = 1
        self._failures = 0
        self._resume_at = 0.0
        self._last_kind = None
        self.stats.retry_at = None
        self._signal()


def _reasons(results: dict[str, EventResult]) -> dict[str, str]:
    return {
        event_id: r.reason or "rejected"
        for event_id, r in results.items()
        if r.status == "rejected"
    }
