"""A full disk refuses new scans with "outbox full", touches nothing queued, and recovers.

Runs on a real, small tmpfs mounted by the test (needs root or CAP_SYS_ADMIN);
skipped with the reason when the mount is not allowed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner_agent.config import AgentConfig
from scanner_agent.outbox import Outbox
from tests.support.agent import acks


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip() or proc.returncode})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path, leave_bytes: int) -> None:
    """Take all free space on path's filesystem but ``leave_bytes``, in a ballast file."""
    import shutil

    free = shutil.disk_usage(path).free
    with (path / "ballast").open("wb") as f:
        f.write(b"\0" * max(0, free - leave_bytes))


def codes(n: int, start: int = 0) -> list[str]:
    return [f"8{i:019d}" for i in range(start, start + n)]


async def test_disk_full_naks_outbox_full_keeps_acked_scans_and_recovers(
    small_fs: Path, make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    outbox_path = small_fs / "outbox.db"
    cfg = make_config(sync={"enabled": False}, outbox={"path": str(outbox_path), "min_free_mb": 0})
    agent = await start_agent(cfg)
    assert (await agent.scan(*codes(50))) == acks(*codes(50))
    fill(small_fs, leave_bytes=64 * 1024)
    acked = set(codes(50))
    full_replies: list[str] = []
    start = 50
    for _ in range(200):  # keep scanning until SQLite itself reports the disk full
        batch = codes(100, start)
        start += 100
        for code, reply in zip(batch, await agent.scan(*batch), strict=True):
            if [reply] == acks(code):
                acked.add(code)
            else:
                full_replies.append(reply)
        if full_replies:
            break
    assert full_replies, "the disk never filled up"
    assert all(r.endswith("\tfull\toutbox full") and r.startswith("NAK ") for r in full_replies)
    assert any("outbox full" in a for a in (await agent.daemon.status())["alarms"])
    rows = await agent.daemon.thread.call(agent.daemon.thread.outbox.rows, limit=100_000)
    assert {r.code for r in rows} == acked  # nothing ACKed lost, nothing NAKed queued
    (small_fs / "ballast").unlink()
    late = codes(10, 10_000_000)
    assert (await agent.scan(*late)) == acks(*late)
    assert not (await agent.daemon.status())["alarms"]
    await agent.stop()
    with Outbox.open(outbox_path) as box:
        assert {r.code for r in box.rows(limit=100_000)} == acked | set(late)


async def test_free_space_reserve_refuses_scans_before_the_disk_is_full(
    small_fs: Path, make_config: Callable[..., AgentConfig], start_agent: Any
) -> None:
    cfg = make_config(
        sync={"enabled": False}, outbox={"path": str(small_fs / "outbox.db"), "min_free_mb": 1}
    )
    agent = await start_agent(cfg)
    assert await agent.scan(codes(1)[0]) == acks(codes(1)[0])
    fill(small_fs, leave_bytes=512 * 1024)  # under the 1 MiB reserve, far from full
    assert await agent.scan(*codes(3, 1)) == [f"NAK {c}\tfull\toutbox full" for c in codes(3, 1)]
    (small_fs / "ballast").unlink()
    assert await agent.scan(*codes(3, 1)) == acks(*codes(3, 1))
