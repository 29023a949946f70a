"""The group committer on a real outbox: group sizes, overflow, and nothing lost at cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.intake import GroupCommitter
from scanner_agent.outbox import EnqueueResult, EnqueueStatus, NewScan, Outbox, OutboxThread
from tests.support.outbox import cn20_scans

scans = cn20_scans


class Recorder:
    """An outbox whose group commits are recorded (sizes), passed through to the real one."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.sizes: list[int] = []

    def enqueue_many(
        self, group: Sequence[NewScan], *args: Any, **kwargs: Any
    ) -> list[EnqueueResult]:
        self.sizes.append(len(group))
        return self.outbox.enqueue_many(group, *args, **kwargs)


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[tuple[Recorder, OutboxThread]]:
    outbox = Outbox.open(tmp_path / "outbox.db")
    thread = OutboxThread(outbox)
    recorder = Recorder(outbox)
    thread.outbox = recorder  # type: ignore[assignment]
    yield recorder, thread
    thread.shutdown()
    outbox.close()


def held(outbox: Outbox) -> dict[str, int]:
    return {r.event_id: r.seq for r in outbox.rows(limit=100_000)}


async def test_groups_never_exceed_max_rows_and_the_overflow_starts_the_next(
    box: tuple[Recorder, OutboxThread],
) -> None:
    recorder, thread = box
    committer = GroupCommitter(thread, max_rows=250)
    task = asyncio.create_task(committer.run())
    batches = [scans(k * 100, 100) for k in range(30)]
    results = await asyncio.gather(*(committer.submit_many(b) for b in batches))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert max(recorder.sizes) <= 250
    assert sum(recorder.sizes) == 3000
    rows = held(recorder.outbox)
    for batch, answer in zip(batches, results, strict=True):
        assert [r.status for r in answer] == [EnqueueStatus.QUEUED] * 100
        assert [rows[s.event_id] for s in batch] == [r.seq for r in answer]


async def test_one_submission_larger_than_a_group_is_committed_whole(
    box: tuple[Recorder, OutboxThread],
) -> None:
    recorder, thread = box
    committer = GroupCommitter(thread, max_rows=50)
    task = asyncio.create_task(committer.run())
    small, big = scans(0, 10), scans(10, 120)
    first, second = await asyncio.gather(committer.submit_many(small), committer.submit_many(big))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(first) == 10
    assert len(second) == 120
    assert 120 in recorder.sizes
    assert len(held(recorder.outbox)) == 130


async def test_cancel_while_lingering_commits_every_gathered_submission(
    box: tuple[Recorder, OutboxThread],
) -> None:
    recorder, thread = box
    committer = GroupCommitter(thread, max_rows=10_000, linger_s=30.0)
    task = asyncio.create_task(committer.run())
    waiters = [asyncio.create_task(committer.submit_many(scans(k * 10, 10))) for k in range(5)]
    await asyncio.sleep(0.2)  # all taken into the group being gathered, which lingers
    assert not any(w.done() for w in waiters)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    answers = await asyncio.gather(*waiters)
    assert all(r.status is EnqueueStatus.QUEUED for a in answers for r in a)
    assert len(held(recorder.outbox)) == 50
