"""The daemon's local control interface: a versioned line-JSON protocol on a UNIX socket.

The daemon serves it (:class:`ControlServer`); ``scanner-agent status``,
``scanner-agent bill ...`` and the TUI use :class:`ControlClient` and
:class:`EventStream`.  Nothing here imports Textual.  See ``docs/control.md``.
"""

from scanner_agent.control._client import ControlClient, EventStream
from scanner_agent.control._protocol import (
    EVENT_KINDS,
    MAX_ARG_CHARS,
    MAX_CODE_CHARS,
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
from scanner_agent.control._server import ControlServer

__all__ = [
    "EVENT_KINDS",
    "MAX_ARG_CHARS",
    "MAX_CODE_CHARS",
    "MAX_DEPTH",
    "MAX_LINE",
    "MAX_REPLY",
    "PROTOCOL_VERSION",
    "ControlClient",
    "ControlError",
    "ControlServer",
    "ControlUnavailable",
    "EventStream",
    "RemoteError",
    "decode",
    "encode",
    "too_deep",
]
