"""The stream side of a TCP source's connection: a reader a stop can end, and how long a
connection lingers before it closes.

asyncio's :class:`asyncio.StreamReader` has no way to stop reading while the peer keeps
sending; :class:`StoppableReader` adds one, so a stop answers what has arrived and nothing
else (docs/tcp-protocol.md, "Framing").
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import SupportsIndex

__all__ = ["LINGER_S", "StoppableReader"]

LINGER_S = 2.0
"""After its last reply, how long a connection the agent ends waits for the peer to close.

Closing a socket with the peer's bytes still unread makes the kernel reset the connection,
and a reset throws away the replies not yet sent: a scanner still sending at a stop would miss
the ACKs of scans that were committed.  So the agent sends its FIN after the replies and reads
(and drops) what comes until the peer closes too, or this long (a lingering close)."""


class StoppableReader(asyncio.StreamReader):
    """asyncio's stream reader, which a stop can end while the peer is still sending.

    A stop ends reading at what has arrived: the handler reads the buffer to its end, commits
    and answers it.  asyncio's reader alone cannot: once its buffer drains it resumes a
    transport that its own flow control had paused, and bytes arriving after ``feed_eof``
    then fail its assertion inside the event loop ("feed_data after feed_eof"), which drops
    the connection before the replies are written.  Here they are dropped instead (never
    framed, never answered: the scanner sends them again), and the peer's own close is
    noted for the lingering close (:data:`LINGER_S`).
    """

    def __init__(self, limit: int) -> None:
        super().__init__(limit=limit)
        self.stopped = False
        """Reading ended by the agent: later bytes are dropped."""
        self.peer_gone = asyncio.Event()
        """The peer closed (EOF, reset or loss of the connection)."""

    def stop(self) -> None:
        """End reading at what has arrived (an EOF for the handler after the buffer)."""
        if not self.stopped:
            super().feed_eof()
            self.stopped = True

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        if not self.stopped:
            super().feed_data(data)

    def feed_eof(self) -> None:
        self.peer_gone.set()
        if not self.stopped:
            super().feed_eof()

    def set_exception(self, exc: Exception) -> None:
        self.peer_gone.set()
        super().set_exception(exc)
