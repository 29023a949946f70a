"""The daemon's local control interface: a versioned line-JSON protocol on a UNIX socket.

This package is the client side: the protocol (:func:`encode`, :func:`decode`,
its bounds and errors) and :class:`ControlClient` and :class:`EventStream`,
which ``scanner-agent status``, ``scanner-agent bill ...`` and the TUI use.
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
    PROTOCOL_VERSION,
    ControlError,
    ControlUnavailable,
    RemoteError,
    decode,
    encode,
    too_deep,
)

__all__ = [
    "EVENT_KINDS",
    "MAX_ARG_CHARS",
    "MAX_DEPTH",
    "MAX_LINE",
    "MAX_REPLY",
    "PROTOCOL_VERSION",
    "REPEATABLE",
    "ControlClient",
    "ControlError",
    "ControlUnavailable",
    "ControlUncertain",
    "EventStream",
    "RemoteError",
    "decode",
    "encode",
    "too_deep",
]
