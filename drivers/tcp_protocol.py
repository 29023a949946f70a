"""The TCP scanner protocol's replies: one line per frame, in a grammar a controller can parse.

A conveyor controller matches each reply to the read it sent, so every reply
carries the same four fields, whatever its kind (docs/tcp-protocol.md)::

    reply  = status SP echo HT kind HT detail LF
    status = "ACK" / "NAK"

* ``echo`` is the frame exactly as it arrived (terminator removed, AIM
  prefix and GS separators kept), with every byte outside ``!``..``~`` and
  the backslash written as ``\\xHH``.  So it never holds a space, a tab or a
  line end, and it decodes back to the frame's bytes.  An over-long frame's
  echo is its first ``max_frame`` bytes.
* ``kind`` is one word: ``accepted`` for an ACK; for a NAK the intake's
  verdict (``invalid``, ``duplicate``, ``full``, ``error``) or the source's
  own refusal (``empty``, ``too-long``, ``timeout``).
* ``detail`` is the stored code for an ACK (escaped like the echo) and the
  human reason for a NAK: UTF-8 text in which the backslash, tabs, line ends
  and other control characters are written as ``\\xHH``.

This module is pure (no I/O): the source formats with it, and tests, the
bench and client code parse with :func:`parse_reply`.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from scanner_agent.kernel import ScanOutcome

VERSION = 2
"""The reply grammar this module speaks (version 1 was the undocumented ``ACK <code>``)."""
VERSIONS = (1, 2)
"""Versions a source can be configured with (``protocol`` option)."""

ACCEPTED = "accepted"
EMPTY = "empty"
TOO_LONG = "too-long"
TIMEOUT = "timeout"
SOURCE_KINDS = (EMPTY, TOO_LONG, TIMEOUT)
"""NAK kinds the TCP source gives itself, without asking the intake."""

HELLO = b"HELLO"
"""A frame that is exactly ``HELLO`` or ``HELLO <version>`` asks for the protocol version."""

_UNSAFE_CODE = re.compile(rb"[^\x21-\x5b\x5d-\x7e]")
"""Bytes an echo or a code may not hold as they are: all but ``!``..``~`` less the backslash."""
_UNSAFE_TEXT = re.compile(rb"[\x00-\x1f\x5c\x7f]")
"""Bytes a reason may not hold as they are: control characters and the backslash."""
_ESCAPE = re.compile(rb"\\x([0-9a-f]{2})")
_CODE = rb"(?:[\x21-\x5b\x5d-\x7e]|\\x[0-9a-f]{2})*"
_TEXT = rb"(?:[\x20-\x5b\x5d-\x7e\x80-\xff]|\\x[0-9a-f]{2})*"
_CODE_FIELD = re.compile(_CODE)
_REPLY = re.compile(rb"(ACK|NAK) (" + _CODE + rb")\t([a-z][a-z-]*)\t(" + _TEXT + rb")\n")
"""A whole version 2 reply line: status, echo, kind, detail (the grammar of the docs)."""


def _hex(match: re.Match[bytes]) -> bytes:
    return b"\\x%02x" % match[0][0]


def escape_code(data: bytes) -> bytes:
    """An echo or code field: every byte outside ``!``..``~``, and ``\\``, as ``\\xHH``.

    >>> escape_code(b"]d2010\\x1d21 A\\\\")
    b']d2010\\\\x1d21\\\\x20A\\\\x5c'
    """
    return _UNSAFE_CODE.sub(_hex, data) if _UNSAFE_CODE.search(data) else data


def escape_text(text: str) -> bytes:
    """A reason field: UTF-8 text with control characters and ``\\`` as ``\\xHH``.

    >>> escape_text("bad\\tvalue 码")
    b'bad\\\\x09value \\xe7\\xa0\\x81'
    """
    data = text.encode("utf-8", "backslashreplace")
    return _UNSAFE_TEXT.sub(_hex, data) if _UNSAFE_TEXT.search(data) else data


def unescape(field: bytes) -> bytes:
    """The bytes a field stands for (inverse of both escapes).

    >>> unescape(b"a\\\\x20b\\\\x5c")
    b'a b\\\\'
    """
    if b"\\" not in field:
        return field
    return _ESCAPE.sub(lambda m: bytes([int(m[1], 16)]), field)


def reply(accepted: bool, echo: bytes, kind: str, detail: bytes) -> bytes:
    """One reply line from already escaped fields."""
    return b"%s %s\t%s\t%s\n" % (b"ACK" if accepted else b"NAK", echo, kind.encode(), detail)


def format_outcome(frame: bytes, outcome: ScanOutcome, max_frame: int) -> bytes:
    """The reply to a frame the intake answered."""
    echo = escape_code(frame[:max_frame])
    if outcome.accepted:
        return reply(True, echo, ACCEPTED, escape_code(outcome.code.encode()))
    return reply(
        False, echo, outcome.verdict.value, escape_text(outcome.reason or outcome.verdict.value)
    )


def format_refusal(frame_head: bytes, kind: str, reason: str, max_frame: int) -> bytes:
    """The reply to a frame the source refused itself (empty, too long, timed out)."""
    return reply(False, escape_code(frame_head[:max_frame]), kind, escape_text(reason))


def format_legacy(outcome: ScanOutcome | None, reason: str = "") -> bytes:
    """Version 1: ``ACK <code>`` or ``NAK <code> <reason>`` (``-`` for no code).

    Kept for controllers written against it (``protocol = 1``); its fields
    cannot be told apart when a code or a reason holds a space.
    """
    if outcome is None:
        return f"NAK - {reason}\n".encode("utf-8", "backslashreplace")
    code = outcome.code or "-"
    if outcome.accepted:
        return f"ACK {code}\n".encode("utf-8", "backslashreplace")
    why = outcome.reason or outcome.verdict.value
    return f"NAK {code} {why}\n".encode("utf-8", "backslashreplace")


def hello_version(frame: bytes) -> int | None:
    """The version a ``HELLO`` frame asks for (0 for none given), or None if it is no HELLO."""
    if frame == HELLO:
        return 0
    head, sep, rest = frame.partition(b" ")
    if head != HELLO or not sep or not rest.isdigit() or len(rest) > 3:
        return None
    return int(rest)


def format_hello(params: dict[str, object]) -> bytes:
    """The reply to ``HELLO [version]``: ``HELLO <version> HT scanner-agent HT key=value ...``.

    The version answered is the one the connection speaks from then on.  Only
    version 2 exists, so whatever a client asks for it gets 2; a later version
    will be given only to a client that asks for it.
    """
    fields = " ".join(f"{k}={v}" for k, v in params.items())
    return f"HELLO {VERSION}\tscanner-agent\t{fields}\n".encode()


class Reply(NamedTuple):
    """A reply line taken apart (what a client does with :func:`parse_reply`)."""

    accepted: bool
    echo: bytes
    """The frame's bytes (unescaped)."""
    kind: str
    detail: str
    """The stored code (ACK) or the reason (NAK), unescaped."""


def parse_reply(line: bytes) -> Reply:
    """Take a version 2 reply line apart, checking the grammar strictly.

    Raises:
        ValueError: the line does not follow the grammar.
    """
    match = _REPLY.fullmatch(line)
    if match is None:
        raise ValueError(f"not a reply line: {line!r}")
    status, echo, kind, detail = match.groups()
    accepted = status == b"ACK"
    if accepted != (kind == b"accepted"):
        raise ValueError(f"status and kind disagree: {line!r}")
    if accepted and _CODE_FIELD.fullmatch(detail) is None:
        raise ValueError(f"a code field with an unescaped byte: {line!r}")
    return Reply(accepted, unescape(echo), kind.decode(), unescape(detail).decode("utf-8"))
