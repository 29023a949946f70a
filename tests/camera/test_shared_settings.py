"""``scanner-agent decode`` and the camera source: one pipeline, one set of settings."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest

from drivers.camera import CameraSource, frame_decoder
from drivers.registry import build_source, resolve_options
from scanner_agent.cli import main
from scanner_agent.cli.camera import decode_options, escape_text
from scanner_agent.config import AgentConfig
from scanner_agent.daemon import Daemon
from scanner_agent.outbox import Outbox
from tests.camera import synth
from tests.support.agent import run_until_ready


def flags(**given: object) -> argparse.Namespace:
    base: dict[str, object] = dict.fromkeys(
        ("source", "config", "decoder", "formats", "roi", "budget_ms", "locate")
    )
    return argparse.Namespace(**(base | given))


def test_decode_runs_with_the_camera_source_defaults() -> None:
    camera = resolve_options("camera", {"device": "-"}, "source")
    assert decode_options(flags()) == camera
    decoder = frame_decoder(decode_options(flags()))
    source = build_source("camera", {"device": "-"})
    assert isinstance(source, CameraSource)
    for attr in ("decoder", "formats", "budget_ms", "roi", "locate", "full_frame_every"):
        assert getattr(decoder, attr) == getattr(source.decoder, attr), attr
    assert [n for n, _ in decoder.passes] == [n for n, _ in source.decoder.passes]


def test_decode_takes_a_configured_camera_s_settings_and_flags_override_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    codes = synth.carton_scene(seed=4, count=2)  # a Code 128 and a GS1 DataMatrix
    image = tmp_path / "carton.png"
    cv2.imwrite(str(image), synth.frame(synth.layout(codes, 0)))
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[outbox]\npath = "{tmp_path / "outbox.db"}"\n\n'
        '[[source]]\ntype = "camera"\nname = "cam:dock"\ndevice = "/dev/video0"\n'
        'formats = ["Code128"]\n'
    )
    main(["decode", str(image), "--source", "cam:dock", "--config", str(config)])
    texts = [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]
    assert texts == [codes[0].text]  # the source reads Code 128 only
    main(
        ["decode", str(image), "--source", "cam:dock", "--config", str(config), "--formats", "all"]
    )
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert main(["decode", str(image), "--source", "cam:nope", "--config", str(config)]) == 2
    assert "cam:dock" in capsys.readouterr().err  # the sources there are named
    config.write_text(f'[outbox]\npath = "{tmp_path / "outbox.db"}"\n')
    assert main(["decode", str(image), "--source", "cam:dock", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "has no camera source" in err  # said, not "Expected one of none"
    assert "none" not in err


async def test_a_video_gives_the_same_codes_through_decode_and_through_the_source(
    tmp_path: Path, make_config: Callable[..., AgentConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    scenes = [synth.carton_scene(seed, 3) for seed in (7, 8)]
    video = tmp_path / "line.avi"
    synth.write_video(video, scenes, frames_per_scene=8)
    assert main(["decode", str(video), "--unique"]) == 0
    by_cli = {json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()}
    source = build_source("camera", {"device": str(video), "dedupe_s": 60.0})
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
        by_source = {r.raw[3:] for r in outbox.rows(limit=100)}
    want = {c.text for scene in scenes for c in scene}
    assert by_source == want
    assert by_cli == {escape_text(text) for text in want}  # decode shows GS as \x1d
