"""The replay source on a real daemon, reading a real named pipe."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from drivers.replay import ReplaySource
from tests.support.drivers import AgentRun, cn20
from tests.support.polling import eventually


async def test_a_replay_reads_on_its_own_thread_not_asyncio_s_default_pool(
    tmp_path: Path, run_source: object
) -> None:
    """A read waiting on a pipe used to hold one of the default pool's threads, and with
    that pool stuck (a storm of other slow work) the replay read nothing."""
    fifo = tmp_path / "scans"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)  # never blocks, and keeps the pipe open for the reader
    source = ReplaySource("replay:test", str(fifo), terminator="crlf")
    agent: AgentRun = await run_source(source)  # type: ignore[operator]
    gate = threading.Event()
    loop = asyncio.get_running_loop()
    stuck = [loop.run_in_executor(None, gate.wait) for _ in range(64)]
    try:
        # The read already waiting takes the first line; the one after must start anew.
        os.write(writer, f"{cn20(1)}\r\n".encode())
        await eventually(lambda: source.submitted == 1, 60)
        os.write(writer, f"{cn20(2)}\r\n".encode())
        await eventually(lambda: source.submitted == 2, 60)
    finally:
        gate.set()
        await asyncio.gather(*stuck)
        os.close(writer)
    await eventually(source.done.is_set, 60)
    assert await agent.stop() == [cn20(1), cn20(2)]
