"""Honeywell serial commands: trigger, menu (configuration) commands and replies.

Pure functions and a small framer; no I/O.  Source: the "Serial Programming
Commands" chapter of Honeywell's scanner user guides (Xenon 1900/1902 user
guide; Voyager 1250g, 1450g and 1200g user guides; N86XX decoded engine user
guide), which all share one syntax:

* Serial trigger, once the scanner is in manual trigger mode: activate
  ``SYN T CR`` (0x16 0x54 0x0D), deactivate ``SYN U CR`` (0x16 0x55 0x0D).
* Menu command: ``SYN M CR`` then ``Tag SubTag Data``, more commands joined
  with ``,`` (same tag: only SubTag and Data repeated) or ``;`` (new tag), and
  one storage character at the end: ``!`` for the volatile (RAM) table,
  ``.`` for the non-volatile (flash) table.  Tags and subtags are three
  characters, case-insensitive.  ``?`` (current value), ``^`` (default) and
  ``*`` (range) may stand in for the data (or subtag, or tag) as queries.
* Reply: the scanner echoes the command sequence with a status character
  inserted directly before each punctuation mark (``,`` ``;`` ``.`` ``!``):
  ACK (0x06) the command was processed, ENQ (0x05) invalid tag or subtag,
  NAK (0x15) the data was out of range.  Example from the guides: query
  ``cbr?.`` answers ``CBRENA1[ACK],SSX0[ACK],CK20[ACK],...``.  A recorded
  reply (HenkVanAsselt/python_hon_usbhid README) ends ``REVINF`` 0x06 ``.``;
  information text a query produces comes before the echo.

:func:`menu_command` always joins with ``;`` and repeats the tag (the form the
guides allow for any mix of tags); :func:`parse_menu_reply` understands both.

>>> menu_command([("232", "BAD", "9")])
b'\\x16M\\r232BAD9!'
>>> parse_menu_reply(b"232BAD9\\x06!")
[MenuReplyItem(tag='232', subtag='BAD', data='9', status=<MenuStatus.ACK: 6>)]
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.framing import DEFAULT_MAX_FRAME, FrameError

SYN = 0x16
TRIGGER_ON = b"\x16T\r"
"""Serial trigger activate: SYN T CR."""
TRIGGER_OFF = b"\x16U\r"
"""Serial trigger deactivate: SYN U CR."""
MENU_PREFIX = b"\x16M\r"
"""Prefix of every menu command: SYN M CR."""

TEMPORARY = "!"
"""Storage character for the volatile (RAM) menu table."""
PERMANENT = "."
"""Storage character for the non-volatile (flash) menu table."""
_PUNCTUATION = b",;.!"
_FINAL = b".!"
_QUERIES = "?^*"


class MenuStatus(enum.IntEnum):
    """The status character the scanner puts in its reply, per command."""

    ACK = 0x06
    """Good command, processed."""
    ENQ = 0x05
    """Invalid tag or subtag."""
    NAK = 0x15
    """Valid tag and subtag, but the data is out of range."""


_STATUS_BYTES = frozenset(int(s) for s in MenuStatus)


@dataclass(frozen=True, slots=True)
class MenuReplyItem:
    """One command's answer in a menu reply."""

    tag: str
    subtag: str
    data: str
    """The echoed data: the value that was set, or the answer to a query."""
    status: MenuStatus

    @property
    def ok(self) -> bool:
        """True when the scanner accepted the command (ACK)."""
        return self.status is MenuStatus.ACK


def _check_field(value: str, what: str) -> None:
    if len(value) != 3 or not value.isascii() or not value.isprintable():
        raise ValueError(
            f"Failed to use {value!r} as Honeywell menu {what}: expected 3 printable ASCII characters"
        )
    if any(c in value for c in ",;.!") and value not in _QUERIES:
        raise ValueError(
            f"Failed to use {value!r} as Honeywell menu {what}: punctuation ,;.! ends a command"
        )


def menu_command(tags: Sequence[tuple[str, str, str]], permanent: bool = False) -> bytes:
    """Build ``SYN M CR`` + ``TagSubTagData;...`` + storage character.

    ``permanent`` selects the non-volatile table (``.``); the default writes the
    volatile table (``!``), which a power cycle resets.
    """
    if not tags:
        raise ValueError("Failed to build a Honeywell menu command: expected at least one tag")
    parts: list[str] = []
    for tag, subtag, data in tags:
        _check_field(tag, "tag")
        _check_field(subtag, "subtag")
        if not data.isascii() or not data.isprintable() or any(c in data for c in ",;.!"):
            raise ValueError(
                f"Failed to use {data!r} as Honeywell menu data: expected printable ASCII "
                "without , ; . !"
            )
        parts.append(tag + subtag + data)
    storage = PERMANENT if permanent else TEMPORARY
    return MENU_PREFIX + (";".join(parts) + storage).encode("ascii")


def menu_query(tag: str, subtag: str = "", query: str = "?") -> bytes:
    """A query: current (``?``), default (``^``) or range (``*``) of a setting.

    With no subtag the query covers every setting of the tag.
    """
    if query not in _QUERIES:
        raise ValueError(f"Failed to use {query!r} as Honeywell menu query: expected ? ^ or *")
    _check_field(tag, "tag")
    if subtag:
        _check_field(subtag, "subtag")
    return MENU_PREFIX + (tag + subtag + query + TEMPORARY).encode("ascii")


def parse_menu_reply(data: bytes) -> list[MenuReplyItem]:
    """Split a menu reply into one item per command.

    Each item ends at a status byte (ACK/ENQ/NAK) that is followed by a
    punctuation mark or the end of ``data``.  After ``,`` the next item reuses
    the previous tag.  A leading ``SYN M CR`` and any text before the last line
    break of the first item (query output such as REVINF's) are skipped.
    Raises ``ValueError`` for an item too short to hold its tag and subtag.
    """
    items: list[MenuReplyItem] = []
    if data.startswith(MENU_PREFIX):
        data = data[len(MENU_PREFIX) :]
    start = 0
    tag: str | None = None
    same_tag = False
    i = 0
    while i < len(data):
        byte = data[i]
        nxt = data[i + 1] if i + 1 < len(data) else None
        if byte not in _STATUS_BYTES or (nxt is not None and nxt not in _PUNCTUATION):
            i += 1
            continue
        segment = data[start:i]
        if not items:
            cut = max(segment.rfind(b"\r"), segment.rfind(b"\n"))
            segment = segment[cut + 1 :]
        text = segment.decode("latin-1")
        if same_tag and tag is not None:
            if len(text) < 3:
                raise ValueError(f"Failed to parse {segment!r} as Honeywell menu reply item")
            subtag, value = text[:3], text[3:]
        else:
            if len(text) < 6:
                raise ValueError(f"Failed to parse {segment!r} as Honeywell menu reply item")
            tag, subtag, value = text[:3], text[3:6], text[6:]
        items.append(MenuReplyItem(tag, subtag, value, MenuStatus(byte)))
        same_tag = nxt == ord(",")
        i += 2
        start = i
    return items


@dataclass(frozen=True, slots=True)
class MenuReply:
    """A complete reply to one menu command."""

    items: tuple[MenuReplyItem, ...]
    raw: bytes
    """The reply bytes, including any query output before the echo."""

    @property
    def ok(self) -> bool:
        """True when every command in the reply was accepted."""
        return bool(self.items) and all(item.ok for item in self.items)


MenuReplyEvent = MenuReply | FrameError


class MenuReplyFramer:
    """Cut a stream of menu replies at their final ``status`` + ``.``/``!``.

    Meant for the configuration phase, when the scanner only answers commands;
    buffered bytes are capped at ``max_frame`` and an over-long reply is dropped
    and reported as a :class:`~drivers.framing.FrameError`.
    """

    def __init__(self, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 2:
            raise ValueError(f"Failed to use max_frame={max_frame}: expected at least 2")
        self.max_frame = max_frame
        self._buffer = bytearray()
        self.discarded_bytes = 0
        """Total bytes dropped (over-long or unparsable replies)."""

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the end of a reply (at most ``max_frame``)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[MenuReplyEvent]:
        """Add bytes; return the replies (and errors) they complete."""
        events: list[MenuReplyEvent] = []
        for byte in data:
            self._buffer.append(byte)
            # A reply ends at a status byte followed by "." or "!"; checking each
            # new byte finds the first such pair, so the end is the latest byte.
            if (
                len(self._buffer) >= 2
                and self._buffer[-1] in _FINAL
                and self._buffer[-2] in _STATUS_BYTES
            ):
                raw = bytes(self._buffer)
                self._buffer.clear()
                self._emit(raw, events)
                continue
            if len(self._buffer) > self.max_frame:
                self.discarded_bytes += len(self._buffer)
                events.append(
                    FrameError(
                        f"menu reply too long (over {self.max_frame} bytes)", len(self._buffer)
                    )
                )
                self._buffer.clear()
        return events

    def _emit(self, raw: bytes, events: list[MenuReplyEvent]) -> None:
        try:
            items = parse_menu_reply(raw)
        except ValueError as exc:
            self.discarded_bytes += len(raw)
            events.append(FrameError(str(exc), len(raw)))
            return
        events.append(MenuReply(tuple(items), raw))


def trigger(on: bool) -> bytes:
    """The serial trigger command: activate (``SYN T CR``) or deactivate (``SYN U CR``)."""
    return TRIGGER_ON if on else TRIGGER_OFF
