"""The camera source in a real daemon: a rendered video in, every code in the outbox exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from drivers.camera import CameraSource
from drivers.registry import build_source
from scanner_agent.config import AgentConfig
from scanner_agent.daemon import Daemon
from scanner_agent.outbox import Outbox
from tests.camera.synth import carton_scene, write_video
from tests.support.agent import run_until_ready


async def test_every_code_in_a_video_is_queued_exactly_once(
    tmp_path: Path, make_config: Callable[..., AgentConfig]
) -> None:
    # Three cartons pass the camera, three codes each (cn20 Code 128 and GS1 DataMatrix),
    # drifting, blurred and noisy, in a real MJPG file; each code is in view for 12 frames.
    scenes = [carton_scene(seed, 3) for seed in range(3)]
    video = tmp_path / "conveyor.avi"
    write_video(video, scenes, frames_per_scene=12)
    source = build_source(
        "camera",
        {
            "device": str(video),
            "formats": ["DataMatrix", "GS1-128"],
            "confirm_frames": 2,
            "dedupe_s": 5.0,
        },
        name="cam:dock",
    )
    assert isinstance(source, CameraSource)
    cfg = make_config(sync={"enabled": False})
    daemon = Daemon(cfg, sources=[(source, "ship", "")])
    task = await run_until_ready(daemon)
    try:
        await asyncio.wait_for(source.finished.wait(), 60)
    finally:
        daemon.request_stop()
        await task

    with Outbox.open(cfg.outbox.path) as outbox:
        rows = outbox.rows(limit=1000)
    want = sorted(c.scan.decode() for scene in scenes for c in scene)
    assert sorted(r.raw for r in rows) == want
    assert {r.scheme for r in rows} == {"cn20", "gs1"}
    assert {r.symbology for r in rows} == {"]C0", "]d2"}
    assert all(r.source == "cam:dock" for r in rows)
    st = source.stats
    assert st.frames_decoded == st.frames_captured == 3 * 13  # a file without fps: every frame
    assert st.frames_dropped == 0
    assert st.decode_errors == 0
    assert st.scans_submitted == 9
