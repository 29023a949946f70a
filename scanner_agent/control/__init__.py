"""The daemon's local control interface: a versioned line-JSON protocol on a UNIX socket.

This package is the client side: the protocol (:func:`encode`, :func:`decode`,
its bounds and errors), :class:`ControlClient` and :class:`EventStream`,
which ``scanner-agent status``, ``scanner-agent bill ...`` and the TUI use,
and :class:`AgentStatus`, the typed ``status`` result with its one JSON form.
Importing it loads neither the server nor the outbox, bills, codes or sync.

The daemon serves it with :class:`scanner_agent.control.server.ControlServer`,
which answers from a small protocol type
(:class:`~scanner_agent.control.server.ControlledAgent`), never from the
daemon class itself.  Nothing here imports Textual.  See ``docs/control.md``.
"""

from scanner_agent.control._client import REPEATABLE, ControlClient, ControlUncertain, EventStream
from scanner_agent.control._protocol import (
    EVENT_KINDS,
    MAX_ARG_CHARS,
    MAX_DEPTH,
    MAX_LINE,
    MAX_REPLY,
    OLDEST_VERSION,
    PROTOCOL_VERSION,
    ControlError,
    ControlUnavailable,
    RemoteError,
    decode,
    encode,
    too_deep,
)
from scanner_agent.status import (
    AgentStatus,
    ControlStatus,
    DeviceReport,
    OpenBill,
    RefusalReport,
    RejectionReport,
    SyncStatus,
    TcpReport,
)

__all__ = [
    "EVENT_KINDS",
    "MAX_ARG_CHARS",
    "MAX_DEPTH",
    "MAX_LINE",
    "MAX_REPLY",
    "OLDEST_VERSION",
    "PROTOCOL_VERSION",
    "REPEATABLE",
    "AgentStatus",
    "ControlClient",
    "ControlError",
    "ControlStatus",
    "ControlUnavailable",
    "ControlUncertain",
    "DeviceReport",
    "EventStream",
    "OpenBill",
    "RefusalReport",
    "RejectionReport",
    "RemoteError",
    "SyncStatus",
    "TcpReport",
    "decode",
    "encode",
    "too_deep",
]
