"""The server's side of one client connection, and binding its socket privately."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path


class Conn:
    """One client connection; lines go straight to its transport, whose backlog is bounded."""

    def __init__(self, writer: asyncio.StreamWriter, max_backlog: int) -> None:
        self.writer = writer
        self.transport = writer.transport
        self.max_backlog = max_backlog
        self.events: set[str] = set()
        self.dropped = False
        """Disconnected for leaving more than ``max_backlog`` bytes unsent."""

    def send(self, line: bytes) -> None:
        """Write one line; a client already ``max_backlog`` bytes behind is disconnected.

        The check comes before the write, so one large reply always goes to a
        client that keeps up: a connection holds at most ``max_backlog`` bytes
        plus one line.
        """
        if self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() > self.max_backlog:
            self.dropped = True
            self.transport.abort()
            return
        self.transport.write(line)

    async def close(self) -> None:
        """Flush what is written (briefly), then close; a client that stopped reading is cut."""
        if not self.transport.is_closing():
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        # Abort, not close: a client that stopped reading must not hold up a stopping daemon
        # while its unsent lines wait for a flush that never comes.
        self.transport.abort()


def bind_private(path: Path) -> socket.socket:
    """A UNIX socket bound at ``path`` (not yet listening), its file the owner's alone.

    bind() creates the file with the process umask: bound under a permissive one
    (0, in a program that embeds the daemon and never set one) and chmod'ed after,
    the socket is open to every local user in between.  The umask is process-wide,
    so it is tightened only around the bind; a file another thread creates in that
    instant gets a tighter mode, never a looser one.
    """
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            listener.bind(str(path))
        finally:
            os.umask(old)
        listener.setblocking(False)
    except BaseException:
        listener.close()
        raise
    return listener
