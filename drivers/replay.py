"""Replay source: scans from a file or standard input, one per line.

Used to replay a capture from a scanner and to feed the agent from a script
(``make demo`` uses a simulated TCP scanner instead).  The file is read on a
thread of the source's own (a :class:`scanner_agent.kernel.Lane`), so a slow
pipe never blocks the event loop and a read waiting on stdin never holds one
of asyncio's shared threads; each line is submitted and awaited in order, so a
replay is throttled by the outbox's commit rate (or by ``rate``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from typing import Any, cast

from drivers.framing import Frame, LineFramer
from drivers.naming import source_label
from scanner_agent.kernel import Intake, Lane, RawScan

log = logging.getLogger(__name__)


class ReplaySource:
    """Submits each line of ``path`` (``-`` for stdin), then finishes."""

    def __init__(
        self,
        name: str,
        path: str,
        *,
        rate: float = 0.0,
        terminator: str = "lf",
        max_frame: int = 4096,
    ) -> None:
        self.name = name
        self.path = path
        self.rate = rate
        self.terminator = terminator
        self.max_frame = max_frame
        self.submitted = 0
        self.done = asyncio.Event()

    async def run(self, intake: Intake) -> None:
        """Replay the whole input once."""
        framer = LineFramer(self.terminator, max_frame=self.max_frame)
        reads = Lane(f"read {self.name}", workers=1, max_pending=1)  # one read at a time
        try:
            stream = cast(
                io.BufferedReader,
                sys.stdin.buffer if self.path == "-" else await reads.run(open, self.path, "rb"),
            )
        except BaseException:
            reads.shutdown()
            raise
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        try:
            while True:
                chunk = await reads.run(stream.read1, 65536)
                events = framer.feed(chunk) if chunk else framer.flush()
                for event in events:
                    if isinstance(event, Frame):
                        await intake.submit(RawScan(event.data, source=self.name, device=self.path))
                        self.submitted += 1
                        if interval:
                            await asyncio.sleep(interval)
                    else:
                        log.warning("%s: %s", self.name, event.reason)
                if not chunk:
                    break
        finally:
            reads.shutdown()
            if stream is not sys.stdin.buffer:
                stream.close()
            self.done.set()
        log.info("%s: replayed %d scans", self.name, self.submitted)


def build(name: str, options: dict[str, Any]) -> ReplaySource:
    """Factory used by :mod:`drivers.registry`."""
    return ReplaySource(
        source_label("replay", name, options["path"]),
        options["path"],
        rate=options["rate"],
        terminator=options["terminator"],
        max_frame=options["max_frame"],
    )
