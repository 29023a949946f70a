"""The EPCIS 2.0 sink of the sync loop: batches of scans captured as ``ObjectEvent`` s.

EPCIS takes any events in any document, so batches are the outbox's ordinary
ones (oldest rows first, ``batch_size`` / ``batch_bytes``).  The document is
built in :meth:`EpcisCaptureClient.send_events`, not on the outbox thread:
a capture may take several documents (what a rollback left unstored goes
again), each built from the events still owed, so there is no single body to
prepare ahead.  Event ids are deterministic, so a resent batch is recognised
and its events come back as duplicates, which count as delivered.
"""

from __future__ import annotations

from typing import Any

from scanner_agent.outbox import Batch, EventResult, Outbox
from scanner_agent.platforms.epcis_capture import EpcisCaptureClient

__all__ = ["EpcisSink"]


class EpcisSink:
    """:class:`EpcisCaptureClient` with the lease and encode steps of the sync loop."""

    def __init__(self, client: EpcisCaptureClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"EpcisSink({self.client!r})"

    def lease(self, outbox: Outbox, limit: int, *, lease_s: float, max_bytes: int) -> Batch | None:
        """The oldest sendable rows, as for Trace API v1."""
        return outbox.lease(limit, lease_s=lease_s, max_bytes=max_bytes)

    def encode(self, batch: Batch) -> None:
        """Nothing ahead: the documents are built while capturing (see the module docstring)."""
        return

    async def send_batch(self, batch: Batch, body: Any) -> dict[str, EventResult]:
        """Capture the batch's scans; one verdict per scan (see :mod:`.epcis_capture`)."""
        return await self.client.send_batch(batch)

    def set_token(self, token: str) -> bool:
        """Use a new bearer token; True when it changed."""
        return self.client.set_token(token)

    async def aclose(self) -> None:
        """Close connections."""
        await self.client.aclose()
