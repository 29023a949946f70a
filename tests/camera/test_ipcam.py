"""IP cameras as they are sold: MJPEG over HTTP and RTSP (H.264), served on loopback.

The source reads a real stream through OpenCV's FFmpeg backend; the server goes
away and comes back on the same port, or stalls with its connections open.  A
code in view on both sides of an outage is one scan, not two.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from drivers.camera import CameraSource
from drivers.capture import CaptureThread, LatestFrame, ScriptedCapture
from drivers.ipcam import safe_url
from drivers.registry import build_source
from scanner_agent.config import AgentConfig
from scanner_agent.daemon import Daemon
from scanner_agent.outbox import Outbox
from tests.camera import synth
from tests.camera.streams import MjpegServer, RtspServer, StreamServer, ffmpeg, video_frames
from tests.support.agent import run_until_ready
from tests.support.polling import eventually, wait_for

FORMATS = ["DataMatrix", "Code128"]


def images(codes: list[synth.Code]) -> list[np.ndarray]:
    return [synth.frame(synth.layout(codes, t), size=(960, 600)) for t in range(3)]


def test_the_watchdog_gives_up_a_connection_that_stays_open_and_sends_nothing() -> None:
    frame = np.zeros((8, 8), np.uint8)
    blocked = threading.Event()

    class Stuck(ScriptedCapture):
        def read(self) -> np.ndarray | None:
            blocked.set()
            time.sleep(3)  # a read stuck in the backend: the socket is open, nothing comes
            return frame

    scripts: Iterator[ScriptedCapture] = iter(
        [ScriptedCapture([frame, frame], live=True), Stuck([], live=True)]
    )
    slot = LatestFrame()
    capture = CaptureThread(
        "cam",
        lambda: next(scripts, None) or ScriptedCapture([frame] * 1000, live=True, interval=0.01),
        slot,
        live=True,
        backoff_initial=0.01,
        stall_s=0.3,
    )
    capture.start()
    try:
        assert blocked.wait(5)
        wait_for(lambda: capture.stalls, 5, "the stall watchdog")
        assert capture.stalls == 1
        assert capture.reason is not None
        assert capture.reason.startswith("stalled: no frame for 0.3 s")
        wait_for(lambda: capture.frames >= 20, 5, "a new connection to deliver again")
    finally:
        capture.stop()


def test_a_stream_url_s_password_is_masked_everywhere_it_is_shown() -> None:
    source = build_source("camera", {"device": "rtsp://admin:s3cret@127.0.0.1:9/stream1"})
    assert isinstance(source, CameraSource)
    assert "s3cret" not in source.name
    assert "s3cret" not in source.device
    assert "s3cret" not in str(source.status())
    assert safe_url("http://cam.local/mjpg") == "http://cam.local/mjpg"


async def run_through_an_outage(
    server: StreamServer, make_config: Callable[..., AgentConfig], first: list, second: list
) -> CameraSource:
    """Serve ``first``'s codes, go away for longer than dedupe_s, come back serving ``first``
    again (a stopped line: the same carton in view) and then ``second``'s."""
    server.start()
    source = build_source(
        "camera",
        {
            "device": server.url,
            "formats": FORMATS,
            "dedupe_s": 1.0,
            "stall_s": 2.0,
            "reconnect_max_s": 0.5,
        },
        name="cam:ip",
    )
    assert isinstance(source, CameraSource)
    cfg = make_config(sync={"enabled": False})
    daemon = Daemon(cfg, sources=[(source, "ship", "")])
    task = await run_until_ready(daemon)
    try:
        await eventually(lambda: source.stats.scans_submitted == len(first), within=30.0)
        server.stop()
        await eventually(lambda: not source.status().connected, within=30.0)
        assert source.status().reason
        await asyncio.sleep(2.5)  # longer than dedupe_s: a wall clock would count first again
        server.frames = video_frames(images(first), 6) + video_frames(images(second), 30)
        server.start()
        await eventually(
            lambda: source.stats.scans_submitted >= len(first) + len(second), within=60
        )
        await asyncio.sleep(1.0)  # room for a second count, if there were one
        assert source.status().connected
    finally:
        daemon.request_stop()
        await task
    with Outbox.open(cfg.outbox.path) as outbox:
        raws = sorted(r.raw for r in outbox.rows(limit=100))
    assert raws == sorted(c.scan.decode() for c in first + second)
    assert source.stats.reconnects >= 1
    return source


async def test_mjpeg_over_http_survives_the_camera_going_away_and_counts_each_code_once(
    make_config: Callable[..., AgentConfig],
) -> None:
    first, second = synth.carton_scene(41, 2), synth.carton_scene(42, 2)
    server = MjpegServer(video_frames(images(first), 4))
    try:
        source = await run_through_an_outage(server, make_config, first, second)
    finally:
        server.stop()
    assert source.stats.scans_submitted == 4
    assert server.connections >= 2


async def test_an_mjpeg_camera_that_stalls_is_reconnected_by_the_watchdog(
    make_config: Callable[..., AgentConfig],
) -> None:
    first, second = synth.carton_scene(43, 2), synth.carton_scene(44, 2)
    server = MjpegServer(video_frames(images(first), 4))
    server.start()
    source = build_source(
        "camera",
        {"device": server.url, "formats": FORMATS, "stall_s": 1.0, "reconnect_max_s": 0.2},
    )
    assert isinstance(source, CameraSource)
    cfg = make_config(sync={"enabled": False})
    daemon = Daemon(cfg, sources=[(source, "ship", "")])
    task = await run_until_ready(daemon)
    try:
        await eventually(lambda: source.stats.scans_submitted == 2, within=30.0)
        server.frames = video_frames(images(second), 4)  # for the next connection
        server.stall()
        await eventually(lambda: source.stats.scans_submitted == 4, within=30.0)
        source.status()
    finally:
        daemon.request_stop()
        await task
        server.stop()
    assert source.stats.stalls + source.stats.reconnects >= 1
    assert server.connections >= 2


@pytest.mark.skipif(ffmpeg() is None, reason="ffmpeg missing (make deps installs it)")
async def test_rtsp_h264_survives_the_camera_going_away_and_counts_each_code_once(
    tmp_path: Path, make_config: Callable[..., AgentConfig]
) -> None:
    first, second = synth.carton_scene(45, 2), synth.carton_scene(46, 2)
    server = RtspServer(video_frames(images(first), 4), tmp_path)
    try:
        source = await run_through_an_outage(server, make_config, first, second)
    finally:
        server.stop()
    assert source.stats.scans_submitted == 4
