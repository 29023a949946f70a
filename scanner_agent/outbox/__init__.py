"""The durable local outbox: every accepted scan is a row here before anything else.

See :mod:`scanner_agent.outbox._store` for the design and ``docs/outbox.md``.
"""

from scanner_agent.outbox._ids import uuid7, uuid7_many
from scanner_agent.outbox._models import (
    Batch,
    BatchEvent,
    EnqueueResult,
    EnqueueStatus,
    EventResult,
    NewScan,
    OutboxRow,
    QueueStats,
    RejectRecord,
    RowState,
    SettleSummary,
    WalCheckpoint,
)
from scanner_agent.outbox._rejects import REJECT_LAST_AT
from scanner_agent.outbox._schema import SCHEMA_VERSION
from scanner_agent.outbox._store import Outbox

__all__ = [
    "REJECT_LAST_AT",
    "SCHEMA_VERSION",
    "Batch",
    "BatchEvent",
    "EnqueueResult",
    "EnqueueStatus",
    "EventResult",
    "NewScan",
    "Outbox",
    "OutboxRow",
    "QueueStats",
    "RejectRecord",
    "RowState",
    "SettleSummary",
    "WalCheckpoint",
    "uuid7",
    "uuid7_many",
]
