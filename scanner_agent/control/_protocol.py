"""Control protocol: line-delimited JSON over a UNIX socket.

Each line is one JSON object (UTF-8, no raw newlines inside)::

    -> {"v": 2, "id": 1, "cmd": "status", "args": {}}
    <- {"id": 1, "ok": true, "result": {...}}
    <- {"id": 2, "ok": false, "error": {"code": "not_found", "message": "..."}}

After ``{"cmd": "subscribe"}`` the same connection also carries events, which
have an ``event`` key and no ``id``::

    <- {"event": "scan", "at": "...", "code": "...", "verdict": "accepted", ...}

``v`` is optional; a request with a ``v`` above :data:`PROTOCOL_VERSION` is
answered ``unsupported_version``.  New fields may appear in any result or
event within a version; clients ignore keys they do not know.

Requests are bounded before they are decoded: a line is at most
``control.max_line_bytes`` (default :data:`MAX_LINE`) and nests at most
:data:`MAX_DEPTH` arrays and objects, checked on the raw text in linear time,
so no request can make the decoder recurse without bound.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from scanner_agent.kernel import ScannerAgentError

PROTOCOL_VERSION = 2
"""The version this build speaks (2: every time in a result is ISO 8601; see ``_status``)."""
OLDEST_VERSION = 1
"""The oldest protocol version the agent still answers in (its ``status`` times differ)."""

MAX_LINE = 1024 * 1024
"""Longest request line by default (``control.max_line_bytes``); a CSV import travels in one."""
MAX_REPLY = 64 * 1024 * 1024
"""Longest reply line a client reads (a ``bill.show`` of 5,000 scans is a few MiB)."""
MAX_DEPTH = 32
"""Deepest nesting of arrays and objects in a request (real ones nest 3 deep)."""
MAX_ARG_CHARS = 1024
"""Longest other string argument (a bill number, a reason, a note)."""

# A JSON string, unrolled ("normal* (special normal*)*") with possessive quantifiers so the
# engine never backtracks, and ending at the closing quote *or the end of the line*: a string
# that never ends is one token to the end, never given up and rescanned from its next quote
# (that rescanning is quadratic, and the regex engine holds the GIL while it runs, so not
# even a thread of its own would keep the event loop going).  Text after an unterminated
# string is not JSON, so no decoder nests into it.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.S)
_NOT_BRACKET = re.compile(rb"[^][{}]+")
# A \u escape of half a UTF-16 surrogate pair (D800-DFFF): the only way JSON text decodes to
# a str that UTF-8 cannot encode again.  (It may be preceded by an escaped backslash, then it
# is no escape: the check that follows it only costs an encode.)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}

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


def too_deep(line: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether arrays and objects in ``line`` nest deeper than ``limit``; linear, never recursing.

    Brackets inside strings do not count.  For text that is not valid JSON it
    errs on the side of "too deep" only where a decoder would fail anyway.
    """
    if line.count(b"[") + line.count(b"{") <= limit:
        return False  # the usual request: too few brackets to nest that deep at all
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", line))
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


def decode(line: bytes) -> dict[str, Any]:
    """Parse one protocol line.

    Raises:
        ValueError: not UTF-8, not a JSON object, nested deeper than :data:`MAX_DEPTH`, or
            a string escapes half a surrogate pair (no reply or command could use it).
    """
    text = line.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if too_deep(line):
        raise ValueError(f"nested deeper than {MAX_DEPTH} arrays and objects")
    try:
        obj = json.loads(text)
    except RecursionError:  # unreachable after the check above; never let it escape
        raise ValueError(f"nested deeper than {MAX_DEPTH} arrays and objects") from None
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    if _SURROGATE_ESCAPE.search(line):
        try:  # a pair decodes to one character and encodes again; a lone half does not
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "a string holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), which is no text"
            ) from None
    return obj
