"""What every trace store does the same way: the batch's checks, its verdicts, its reply.

A store (SQLite in :mod:`._store`, PostgreSQL in :mod:`._pgstore`) only keeps
batches and events; the Trace API v1 semantics live here once: parsing and
validation, the replay key check, which event is ``accepted``, ``duplicate``
or ``rejected`` (:func:`classify`), and the reply's exact bytes
(:func:`reply_for`), so both backends answer a batch byte for byte alike.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections import Counter
from datetime import UTC, datetime
from operator import itemgetter
from typing import Final

from scanner_agent.kernel import ScannerAgentError
from scanner_agent.traceserver._protocol import (
    Batch,
    EventRow,
    RequestRefused,
    decode_batch,
    fingerprint,
    parse_batch,
    refusals,
)

__all__ = [
    "BatchStore",
    "DatabaseError",
    "Holders",
    "SchemaMismatch",
    "Stored",
    "Verdicts",
    "classify",
    "error_body",
    "replayed",
    "reply_for",
    "utc_now",
]

log = logging.getLogger("scanner_agent.traceserver")


def error_body(message: str) -> bytes:
    """The JSON body of every error reply: ``{"error": message}``."""
    return _dumps({"error": message})


def _dumps(value: object) -> bytes:
    return _dumps_text(value).encode("utf-8")


def _dumps_text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Verdicts = dict[int, tuple[str, str]]
"""The verdicts of a batch other than a plain ``accepted``: index → ``(status, reason)``."""

_ACCEPTED_SEP: Final = '","status":"accepted","reason":null},{"event_id":"'
"""What stands between two event ids in a run of accepted results in the reply JSON."""


def reply_for(batch: Batch, others: Verdicts) -> bytes:
    """The reply to a stored batch: ``{"batch_id": …, "results": [{"event_id", "status", "reason"}, …]}``.

    Compact UTF-8 JSON, exactly as :func:`_dumps` writes it.  For a plain
    batch (no string needing an escape, see :attr:`Batch.plain_json`) a run of accepted
    results is one ``str.join`` of the event ids; only the other verdicts,
    whose reasons may hold anything, are encoded one by one.
    """
    ids = list(map(itemgetter(0), batch.events))
    if batch.plain_json is None:
        verdicts: list[dict[str, str | None]] = [
            {"event_id": event_id, "status": "accepted", "reason": None} for event_id in ids
        ]
        for index, (status, reason) in others.items():
            verdicts[index] = {"event_id": ids[index], "status": status, "reason": reason}
        return _dumps({"batch_id": batch.batch_id, "results": verdicts})
    parts: list[str] = []
    start = 0
    for index in sorted(others):
        if index > start:
            parts.append(_accepted_run(ids[start:index]))
        status, reason = others[index]
        parts.append(_dumps_text({"event_id": ids[index], "status": status, "reason": reason}))
        start = index + 1
    if start < len(ids):
        parts.append(_accepted_run(ids[start:]))
    return f'{{"batch_id":"{batch.batch_id}","results":[{",".join(parts)}]}}'.encode()


def _accepted_run(ids: list[str]) -> str:
    """``{"event_id":…,"status":"accepted","reason":null}`` for each of ``ids`` (plain), comma-joined."""
    return '{"event_id":"' + _ACCEPTED_SEP.join(ids) + '","status":"accepted","reason":null}'


Holders = dict[tuple[str, str, str], str]
"""Who holds each ``(code, action, bill)``: the event id that recorded it."""


def classify(
    events: list[EventRow], refused: dict[int, str], held: set[str], holders: Holders
) -> tuple[Verdicts, list[EventRow]]:
    """The verdicts of a batch other than ``accepted``, and the events to store, in order.

    ``held`` are the batch's event ids the store holds already; ``holders`` the
    holders of the batch's codes (updated with the events chosen here).  An
    event id already held is ``accepted`` again and not stored twice, even if
    it would now be refused (the agent re-split a batch after a crash: the
    service has it).  A code held for the same action and bill is a
    ``duplicate`` naming its holder; within the batch the first event wins.
    """
    others: Verdicts = {}
    rows: list[EventRow] = []
    for index, event in enumerate(events):
        event_id, code, _scheme, action, bill, _scanned_at, _source = event
        if event_id in held:
            continue
        if (problem := refused.get(index)) is not None:
            others[index] = ("rejected", problem)
        elif (holder := holders.get((code, action, bill))) is not None:
            reason = f"code already recorded for this action and bill by event {holder}"
            others[index] = ("duplicate", reason)
        else:
            holders[code, action, bill] = event_id
            rows.append(event)
    return others, rows


class DatabaseError(ScannerAgentError):
    """The store's database cannot serve: unreachable, refused, or at another schema.

    The CLI says it in one line (``database_errors``): an operator who mistyped the
    URI or started the service before ``trace-server migrate`` reads no traceback.
    """


class SchemaMismatch(DatabaseError):
    """The store's schema is not the version this code reads and writes (the server never
    changes a PostgreSQL schema: ``trace-server migrate`` does)."""


Stored = tuple[int, bytes, Verdicts | None, int]
"""What a backend's :meth:`BatchStore._store_batch` returns: ``(status, reply, verdicts, new)``;
``verdicts`` is None for a replay or a refusal (nothing was stored)."""


class BatchStore(ABC):
    """A trace store, the seam between the web app and a backend (SQLite or PostgreSQL).

    ``POST /v1/batches`` is done here for every backend: parse, check; the backend stores.

    A backend implements :meth:`_store_batch`: in one transaction, answer a
    replay from the stored first reply (or 422 for a different body), else
    classify the events against what it holds, store the new ones and the
    batch with its reply.
    """

    def ingest_batch(
        self,
        batch_id: str,
        body_hash: str | None,
        payload: object,
        *,
        reject_codes: frozenset[str] = frozenset(),
        max_events: int = 50_000,
        device: str | None = None,
    ) -> tuple[int, bytes]:
        """Validate and store one decoded ``POST /v1/batches`` body; return ``(status, reply)``.

        ``batch_id`` is the request's ``Idempotency-Key``; ``body_hash`` identifies
        the body for replay detection (None: the canonical :func:`fingerprint`).
        Statuses: 200 with the results (the stored first reply on a replay),
        400 for a malformed batch or a key that differs from the body's
        ``batch_id``, 403 when ``device`` (the sender's dock token's device;
        None: the shared token) is not the batch's ``device_id``, 422 for a known
        key with a different body.
        """
        try:
            batch = parse_batch(payload, max_events=max_events)
        except RequestRefused as exc:
            return exc.status, error_body(exc.message)
        return self._ingest(batch_id, body_hash, batch, reject_codes, device)

    def ingest_body(
        self,
        batch_id: str,
        body: bytes,
        *,
        reject_codes: frozenset[str] = frozenset(),
        max_events: int = 50_000,
        device: str | None = None,
    ) -> tuple[int, bytes]:
        """:meth:`ingest_batch` for the raw (uncompressed) JSON body, as the web app receives it.

        The body is decoded by :func:`decode_batch`, which reads the agent's
        compact bodies without building a dict per event; anything else is
        parsed with :func:`json.loads` and answered exactly as before (400
        ``body is not valid JSON`` when it is not JSON).
        """
        try:
            batch = decode_batch(body, max_events=max_events)
        except RequestRefused as exc:
            return exc.status, error_body(exc.message)
        return self._ingest(batch_id, None, batch, reject_codes, device)

    def _ingest(
        self,
        batch_id: str,
        body_hash: str | None,
        batch: Batch,
        reject_codes: frozenset[str],
        device: str | None,
    ) -> tuple[int, bytes]:
        """Store a parsed batch, or answer its replay; ``(status, reply)``."""
        if batch.batch_id != batch_id:
            return 400, error_body("Idempotency-Key does not match the body's batch_id")
        if device is not None and batch.device_id != device:
            # Before the replay check: another dock's batch id must not fetch its reply.
            return 403, error_body("this token may only send batches of its own device_id")
        digest = fingerprint(batch) if body_hash is None else body_hash
        refused = refusals(batch.events, reject_codes)  # pure: outside any lock
        status, reply, others, stored = self._store_batch(batch, digest, refused, utc_now())
        if others is not None and log.isEnabledFor(logging.DEBUG):
            counts = Counter(status for status, _reason in others.values())
            log.debug(
                "batch %s from %s: %d events, %d accepted (%d new), %d duplicate, %d rejected",
                batch_id,
                batch.device_id,
                len(batch.events),
                len(batch.events) - len(others),
                stored,
                counts["duplicate"],
                counts["rejected"],
            )
        return status, reply

    @property
    @abstractmethod
    def path(self) -> str:
        """Where the store keeps its data (a file, or a database URI without its password)."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's connections; idempotent."""

    @abstractmethod
    def events_for_code(self, code: str) -> list[dict[str, str]]:
        """Every stored event for ``code``, in the order received."""

    @abstractmethod
    def events_after(
        self, after: int = 0, limit: int = 1000
    ) -> tuple[list[dict[str, str]], int | None]:
        """Up to ``limit`` events after the cursor ``after``, oldest first, and the next cursor
        (None when there are none)."""

    @abstractmethod
    def batch_reply(self, batch_id: str) -> bytes | None:
        """The stored first reply to ``batch_id``, or None if the batch is unknown."""

    @abstractmethod
    def count_events(self) -> int:
        """How many events the store holds."""

    @abstractmethod
    def count_batches(self) -> int:
        """How many batches the store has answered (and keeps the reply of)."""

    def device_for_token(self, token: str) -> str | None:
        """The device of a live per-dock token, or None; a backend without them has none."""
        return None

    @abstractmethod
    def _store_batch(
        self, batch: Batch, digest: str, refused: dict[int, str], received_at: str
    ) -> Stored:
        """One transaction: the replay's answer, or store the batch's new events and its reply."""


def replayed(batch_id: str, digest: str, held_digest: str, held_reply: bytes) -> Stored:
    """The answer to a batch id already held: its first reply, or 422 for another body."""
    if held_digest == digest:
        log.debug("batch %s: replay, first reply returned", batch_id)
        return 200, held_reply, None, 0
    message = f"batch {batch_id} was already received with a different body"
    return 422, error_body(message), None, 0
