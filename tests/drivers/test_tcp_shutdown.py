"""Stopping the agent while a fixed-mount scanner is still sending.

:meth:`drivers.tcp.TcpSource.run` promises that a clean stop answers every line it
already read and committed: the scanner, reading until the connection closes, has an
``accepted`` reply for every row in the outbox, no other reply (a frame the stop cut in two
is no frame), no reset, and the event loop reports no error.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.tcp_protocol import parse_reply
from scanner_agent.config import AgentConfig
from tests.drivers.tcp_client import port_of, tcp_agent
from tests.support.polling import eventually


class Burst:
    """A scanner on a blocking socket sending unique trace codes as fast as it is read,
    and reading its replies until the agent closes the connection."""

    def __init__(self, port: int, first: int) -> None:
        self.first = first
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.accepted = 0
        self.other: list[bytes] = []
        self.reset = False
        self._threads = [
            threading.Thread(target=self._send, daemon=True),
            threading.Thread(target=self._read, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _send(self) -> None:
        n = self.first
        try:
            while True:
                self.sock.sendall(b"".join(b"8123458%09d0000\n" % (n + i) for i in range(512)))
                n += 512
        except OSError:
            pass

    def _read(self) -> None:
        try:
            with self.sock.makefile("rb") as lines:
                for line in lines:
                    if parse_reply(line).kind == "accepted":
                        self.accepted += 1
                    else:
                        self.other.append(line)
        except ConnectionResetError:  # replies not yet delivered were thrown away with it
            self.reset = True

    def join(self) -> None:
        for t in self._threads:
            t.join(30)
            assert not t.is_alive(), "the connection was not closed after the stop"
        self.sock.close()


async def test_a_stop_in_the_middle_of_a_burst_answers_every_committed_scan(
    make_config: Callable[..., AgentConfig], tmp_path: Path
) -> None:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    bursts: list[Burst] = []
    try:
        async with tcp_agent(make_config) as (_daemon, source):
            bursts = [Burst(port_of(source), k * 10**8) for k in range(3)]
            # Well into the burst: the agent reads slower than the scanners send, so each
            # connection has more buffered than the reader holds and reading is paused.
            await eventually(lambda: all(b.accepted > 3000 for b in bursts), what="the burst")
        for b in bursts:
            b.join()
    finally:
        asyncio.get_running_loop().set_exception_handler(None)
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        (rows,) = db.execute("SELECT count(*) FROM scans").fetchone()
    assert [str(e.get("exception", e["message"])) for e in errors] == []
    assert all(b.other == [] for b in bursts), [b.other[:3] for b in bursts]
    assert not any(b.reset for b in bursts), "the agent reset a connection"
    assert sum(b.accepted for b in bursts) == rows
