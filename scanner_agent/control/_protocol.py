"""Control protocol v1: line-delimited JSON over a UNIX socket.

Each line is one JSON object (UTF-8, no raw newlines inside)::

    -> {"v": 1, "id": 1, "cmd": "status", "args": {}}
    <- {"id": 1, "ok": true, "result": {...}}
    <- {"id": 2, "ok": false, "error": {"code": "not_found", "message": "..."}}

After ``{"cmd": "subscribe"}`` the same connection also carries events, which
have an ``event`` key and no ``id``::

    <- {"event": "scan", "at": "...", "code": "...", "verdict": "accepted", ...}

``v`` is optional; a request with a ``v`` above :data:`PROTOCOL_VERSION` is
answered ``unsupported_version``.  New fields may appear in any result or
event within a version; clients ignore keys they do not know.
"""

from __future__ import annotations

import json
from typing import Any

from scanner_agent.errors import ScannerAgentError

PROTOCOL_VERSION = 1
"""The version this build speaks."""

MAX_LINE = 16 * 1024 * 1024
"""Longest request line (an imported CSV file travels inside one)."""

EVENT_KINDS = ("scan", "bill")
"""Events a client can subscribe to."""


class ControlError(ScannerAgentError):
    """The control interface failed (client side), or refused a request."""


class ControlUnavailable(ControlError):
    """The daemon cannot be reached on its control socket (not running, no permission)."""


class RemoteError(ControlError):
    """The daemon answered a request with an error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        """``bad_request``, ``unknown_command``, ``unsupported_version``, ``not_found``,
        ``conflict``, ``unavailable`` or ``internal``."""


def encode(obj: Any) -> bytes:
    """One protocol line."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """Parse one protocol line.

    Raises:
        ValueError: not a JSON object.
    """
    obj = json.loads(line.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    return obj
