"""The camera source with the scripted fake camera: reconnects, bad frames, drops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from drivers.camera import CameraSource
from drivers.capture import Capture, ScriptedCapture
from drivers.decoders import FrameDecoder
from drivers.registry import build_source
from scanner_agent.config import AgentConfig
from scanner_agent.daemon import Daemon
from scanner_agent.kernel import ConfigError, DeviceDisconnected, DeviceUnavailable
from scanner_agent.outbox import Outbox
from tests.camera import synth
from tests.support.agent import run_until_ready
from tests.support.polling import eventually


def small(codes: list[synth.Code], t: int = 0) -> np.ndarray:
    return synth.frame(synth.layout(codes, t), size=(960, 600))


async def test_a_stream_that_drops_is_reopened_and_a_bad_frame_is_only_counted(
    make_config: Callable[..., AgentConfig],
) -> None:
    first, second = synth.carton_scene(11, 2), synth.carton_scene(12, 2)
    garbage = np.zeros((4, 4), np.float32)  # a frame no decoder can take
    scripts: Iterator[list[np.ndarray | Exception]] = iter(
        [
            # Bad frames in a row: the latest-frame slot may drop some while a good one decodes.
            [
                small(first),
                small(first, 1),
                *[garbage] * 6,
                DeviceDisconnected("gone", device="cam"),
            ],
            [small(second), RuntimeError("backend fault mid-stream")],
            [small(second, 1)],
        ]
    )
    opens = 0

    def opener() -> Capture:
        nonlocal opens
        opens += 1
        script = next(scripts, None)
        if script is None:
            raise DeviceUnavailable("Failed to open 'cam': no such device", device="cam")
        return ScriptedCapture(script, live=True, interval=0.05)  # a 20 frame/s camera

    source = CameraSource(
        "cam:test",
        "rtsp://camera.invalid/stream",
        FrameDecoder("zxing", ["DataMatrix", "Code128"]),
        opener=opener,
        reconnect_max_s=0.05,
    )
    cfg = make_config(sync={"enabled": False})
    daemon = Daemon(cfg, sources=[(source, "ship", "")])
    task = await run_until_ready(daemon)
    try:
        await eventually(lambda: source.stats.scans_submitted == 4 and opens >= 4)
        status = source.status()
    finally:
        daemon.request_stop()
        await task
    assert 1 <= source.stats.decode_errors <= 6
    assert source.stats.reconnects >= 3
    assert status.device == "rtsp://camera.invalid/stream"
    assert status.errors >= 2
    with Outbox.open(cfg.outbox.path) as outbox:
        raws = sorted(r.raw for r in outbox.rows())
    assert raws == sorted(c.scan.decode() for c in first + second)


async def test_a_file_played_at_a_frame_rate_drops_frames_the_decoder_cannot_keep_up_with(
    make_config: Callable[..., AgentConfig],
) -> None:
    codes = synth.carton_scene(21, 2)
    frames: list[np.ndarray | Exception] = [small(codes, t % 3) for t in range(40)]
    decoder = FrameDecoder("zxing", ["DataMatrix", "Code128"])
    source = CameraSource(
        "cam:fast",
        "replay.avi",
        decoder,
        opener=lambda: ScriptedCapture(frames),
        live=False,
        fps=2000.0,  # far faster than 960x600 frames decode
    )
    cfg = make_config(sync={"enabled": False})
    daemon = Daemon(cfg, sources=[(source, "ship", "")])
    task = await run_until_ready(daemon)
    try:
        await asyncio.wait_for(source.finished.wait(), 30)
    finally:
        daemon.request_stop()
        await task
    st = source.stats
    assert st.frames_captured == 40
    assert st.frames_dropped > 0
    assert st.frames_decoded + st.frames_dropped == 40
    assert st.scans_submitted == 2


async def test_a_missing_video_file_fails_the_source_at_start(
    tmp_path: Path, make_config: Callable[..., AgentConfig]
) -> None:
    source = build_source("camera", {"device": str(tmp_path / "missing.mp4")})
    daemon = Daemon(make_config(sync={"enabled": False}), sources=[(source, "ship", "")])
    with pytest.raises(Exception, match=r"missing\.mp4"):
        await run_until_ready(daemon)


def test_config_errors_name_the_key() -> None:
    def build(**options: object) -> None:
        build_source("camera", {"device": "0", **options})

    with pytest.raises(ConfigError, match=r"source\.formats: Failed to parse 'Code12'"):
        build(formats=["Code12"])
    with pytest.raises(ConfigError, match=r"source\.roi: expected a list of int"):
        build(roi=[0, 0, 10, "a"])
    with pytest.raises(ConfigError, match=r"source\.decoder"):
        build(decoder="zbar")
    with pytest.raises(ConfigError, match=r"confirm_frames"):
        build(confirm_frames=0)
    source = build_source("camera", {"device": "/dev/video7"})
    assert source.name == "camera:/dev/video7"
