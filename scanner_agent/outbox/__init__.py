"""The durable local outbox: every accepted scan is a row here before anything else.

See :mod:`scanner_agent.outbox._outbox` for the design and which module holds what, and
``docs/outbox.md``.
"""

from scanner_agent.outbox._bill_lease import lease_bill
from scanner_agent.outbox._bill_store import BillStore
from scanner_agent.outbox._damage import DamagedRow, QuarantinedRow
from scanner_agent.outbox._file import FILE_MODE, OUTBOX_APPLICATION_ID, outbox_path_problem
from scanner_agent.outbox._ids import uuid7, uuid7_many
from scanner_agent.outbox._models import (
    Batch,
    BatchEvent,
    BillCounts,
    BillRow,
    BillScanRow,
    EnqueueResult,
    EnqueueStatus,
    EventResult,
    FirstScan,
    NewScan,
    OutboxRow,
    ProductGroup,
    QueueStats,
    RejectRecord,
    Removal,
    SettleSummary,
    WalCheckpoint,
)
from scanner_agent.outbox._outbox import Outbox
from scanner_agent.outbox._readonly import FileCheck, check_file
from scanner_agent.outbox._rejects import REJECT_LAST_AT, reason_label
from scanner_agent.outbox._schema import SCHEMA_VERSION
from scanner_agent.outbox._states import (
    BACKLOG_STATES,
    STORED_STATES,
    BillState,
    RowState,
    backlog_count,
    backlog_where,
    bill_state,
    count_row_states,
    row_state,
    row_state_sql,
    row_state_where,
)
from scanner_agent.outbox._thread import OutboxThread

__all__ = [
    "BACKLOG_STATES",
    "FILE_MODE",
    "OUTBOX_APPLICATION_ID",
    "REJECT_LAST_AT",
    "SCHEMA_VERSION",
    "STORED_STATES",
    "Batch",
    "BatchEvent",
    "BillCounts",
    "BillRow",
    "BillScanRow",
    "BillState",
    "BillStore",
    "DamagedRow",
    "EnqueueResult",
    "EnqueueStatus",
    "EventResult",
    "FileCheck",
    "FirstScan",
    "NewScan",
    "Outbox",
    "OutboxRow",
    "OutboxThread",
    "ProductGroup",
    "QuarantinedRow",
    "QueueStats",
    "RejectRecord",
    "Removal",
    "RowState",
    "SettleSummary",
    "WalCheckpoint",
    "backlog_count",
    "backlog_where",
    "bill_state",
    "check_file",
    "count_row_states",
    "lease_bill",
    "outbox_path_problem",
    "reason_label",
    "row_state",
    "row_state_sql",
    "row_state_where",
    "uuid7",
    "uuid7_many",
]
