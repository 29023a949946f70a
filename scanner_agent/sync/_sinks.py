"""What the sync loop sends batches to: one sink per protocol (``sync.protocol``).

The loop owns everything the protocols share: the outbox, leases, the
pipelining window, retry with backoff, the refused-credential pause and the
per-event settlement.  A sink only knows its platform:

* which rows form a batch (:meth:`Sink.lease`: the oldest rows for Trace API
  v1, one whole closed bill for 码上放心),
* how a batch is put on the wire (:meth:`Sink.encode`, run on the outbox
  thread right after the lease, so it may read the outbox),
* and what the platform said about each event (:meth:`Sink.send_batch`).

A sink reports failures with the :class:`~scanner_agent.errors.SyncError`
tree, which is what drives the loop: ``TransientSyncError`` (and its
``RateLimitedError``) retries the same batch after backoff or ``retry_after``,
``AuthError`` pauses until :meth:`Sink.set_token` brings a new credential,
``BatchRejectedError`` dead-letters the batch with the message,
``ProtocolError`` retries without marking anything.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from scanner_agent.outbox import Batch, EventResult, Outbox


class Sink(Protocol):
    """One platform's side of the sync loop (see the module docstring)."""

    def lease(self, outbox: Outbox, limit: int, *, lease_s: float, max_bytes: int) -> Batch | None:
        """Outbox thread: lease the next batch to send, or None when nothing is due.

        An expired lease must come back first with the same id and rows, so a
        retry after a crash is recognisable to the platform.
        """
        ...

    def encode(self, batch: Batch) -> Any:
        """Outbox thread: the request(s) for ``batch``, handed back to :meth:`send_batch`.

        Raises:
            ValueError: the batch cannot be encoded (the loop gives it back and backs off).
        """
        ...

    async def send_batch(self, batch: Batch, body: Any) -> dict[str, EventResult]:
        """Deliver ``batch`` (``body`` from :meth:`encode`); one verdict per event.

        Raises:
            SyncError: its subclasses as described in the module docstring.
        """
        ...

    def set_token(self, token: str) -> bool:
        """Use a new credential from the next request on; True when it changed."""
        ...

    async def aclose(self) -> None:
        """Close connections and stop background work."""
        ...


@runtime_checkable
class PlatformAlarms(Protocol):
    """A sink that learns of problems after delivery, which need a person.

    The 码上放心 platform processes a bill after taking it, and may fail to: the
    scans are delivered, so nothing in the outbox shows it.  Such a sink keeps
    the problems, the daemon shows :meth:`alarms` in ``status()['alarms']``
    (CLI ``status``, TUI, metrics), and an operator clears one with
    :meth:`acknowledge` (``scanner-agent bill ack``).
    """

    async def load_alarms(self) -> None:
        """Read the problems not yet acknowledged back from the outbox (at start)."""
        ...

    def alarms(self) -> list[str]:
        """The alarm lines to show now (empty: none)."""
        ...

    async def acknowledge(self, bill: str, note: str) -> list[Any]:
        """Record that a person handled ``bill``'s problems; the ones cleared (empty: none)."""
        ...
