"""Decoders behind one interface: format hints, passes, budget, faults, misreads."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from drivers.camera import CodeFilter
from drivers.capture import Frame, LatestFrame
from drivers.decoders import (
    DecoderUnavailable,
    FrameDecoder,
    Symbol,
    format_names,
    load_pyzbar,
    pyzbar_available,
)
from scanner_agent.cli.camera import escape_text
from scanner_agent.kernel import ConfigError
from tests.camera import synth

needs_pyzbar = pytest.mark.skipif(
    not pyzbar_available(), reason="pyzbar or libzbar0 missing (make deps installs libzbar0)"
)


@pytest.fixture(scope="module")
def scene() -> tuple[list[synth.Code], np.ndarray]:
    codes = synth.carton_scene(seed=5, count=3)
    return codes, synth.frame(synth.layout(codes, 2))


def test_zxing_reads_every_code_in_a_frame_with_identifier_and_gs(
    scene: tuple[list[synth.Code], np.ndarray],
) -> None:
    codes, frame = scene
    result = FrameDecoder("zxing", ["DataMatrix", "Code128"]).decode(frame)
    assert sorted(s.scan for s in result.symbols) == sorted(c.scan for c in codes)
    dm = next(s for s in result.symbols if s.format == "DataMatrix")
    assert dm.symbology == "]d2"
    assert "\x1d21" in dm.text
    assert result.passes == 1
    assert result.errors == ()


def test_format_hints_leave_other_symbologies_unread(
    scene: tuple[list[synth.Code], np.ndarray],
) -> None:
    _, frame = scene
    result = FrameDecoder("zxing", ["DataMatrix"], retry=False).decode(frame)
    assert {s.format for s in result.symbols} == {"DataMatrix"}


def test_region_of_interest_decodes_only_inside_and_reports_frame_coordinates(
    scene: tuple[list[synth.Code], np.ndarray],
) -> None:
    codes, frame = scene
    (code, x, y) = synth.layout(codes, 2)[1]  # the DataMatrix
    result = FrameDecoder(
        "zxing", ["DataMatrix", "Code128"], roi=[x - 20, y - 20, 160, 160]
    ).decode(frame)
    (s,) = result.symbols
    assert s.text == code.text
    (x0, y0) = s.position[0]
    assert x <= x0 <= x + 40
    assert y <= y0 <= y + 40


def test_format_names_accept_aliases_and_reject_unknown_names() -> None:
    assert format_names(["gs1-128", "data_matrix", "QR", "Code128"]) == (
        "Code128",
        "DataMatrix",
        "QRCode",
    )
    with pytest.raises(ConfigError, match="'Code12' as a barcode format"):
        format_names(["Code12"])
    with pytest.raises(ConfigError, match="as a decoder"):
        FrameDecoder("zbar")
    with pytest.raises(ConfigError, match="as a region"):
        FrameDecoder(roi=[0, 0, 10])


def test_retry_passes_run_only_when_the_first_finds_nothing_and_stop_at_the_budget() -> None:
    blank = np.full((240, 320), 200, np.uint8)
    unbounded = FrameDecoder("zxing", ["Code128"]).decode(blank)
    assert unbounded.passes == 5
    assert not unbounded.over_budget
    bounded = FrameDecoder("zxing", ["Code128"], budget_ms=1e-6).decode(blank)
    assert bounded.passes == 2  # zxing-cpp and its inverted pass: what its defaults read
    assert bounded.over_budget


def test_a_library_fault_is_reported_and_the_next_pass_still_runs(
    scene: tuple[list[synth.Code], np.ndarray],
) -> None:
    codes, frame = scene
    decoder = FrameDecoder("zxing", ["DataMatrix", "Code128"])

    def boom(image: np.ndarray) -> list[Symbol]:
        raise RuntimeError("decoder crashed\non this frame")

    decoder.passes.insert(0, ("boom", boom))
    result = decoder.decode(frame)
    assert result.errors == ("boom: RuntimeError: decoder crashed on this frame",)
    assert len(result.symbols) == len(codes)
    bad = decoder.decode(np.zeros((8, 8), np.float32))
    assert bad.symbols == ()
    assert len(bad.errors) == 1
    assert bad.errors[0].startswith("frame: TypeError")


@needs_pyzbar
def test_pyzbar_reads_code128_and_cannot_be_asked_for_datamatrix(
    scene: tuple[list[synth.Code], np.ndarray],
) -> None:
    codes, frame = scene
    result = FrameDecoder("pyzbar", ["Code128"]).decode(frame)
    assert sorted(s.text for s in result.symbols) == sorted(
        c.text for c in codes if c.kind == "cn20"
    )
    assert {s.decoder for s in result.symbols} == {"pyzbar"}
    with pytest.raises(ConfigError, match="no DataMatrix"):
        FrameDecoder("pyzbar", ["DataMatrix"])
    both = FrameDecoder("both", ["DataMatrix", "Code128"])
    assert [name for name, _ in both.passes][:3] == ["zxing", "zxing-inverted", "pyzbar"]


def test_missing_libzbar_is_reported_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyzbar", None)
    with pytest.raises(DecoderUnavailable, match="libzbar0"):
        load_pyzbar()
    with pytest.raises(DecoderUnavailable):
        FrameDecoder("both")
    # The default goes on with zxing-cpp alone (doctor names the missing library).
    assert next(name for name, _ in FrameDecoder("auto").passes) == "zxing"
    assert "pyzbar" not in dict(FrameDecoder("auto").passes)


def test_code_filter_counts_a_code_once_per_appearance_and_confirms_over_frames() -> None:
    f = CodeFilter(dedupe_s=1.0, confirm_frames=1)
    assert f.feed(["A", "B", "A"], now=0.0) == ["A", "B"]
    assert f.feed(["A"], now=0.9) == []
    assert f.feed(["A"], now=1.8) == []  # still in view: the window slides
    assert f.feed(["A"], now=3.0) == ["A"]  # gone for more than dedupe_s: a new scan
    confirm = CodeFilter(dedupe_s=1.0, confirm_frames=3)
    assert [confirm.feed(["X"], now=t / 10) for t in range(4)] == [[], [], ["X"], []]
    assert confirm.feed(["misread"], now=5.0) == []


def test_latest_frame_drops_what_the_decoder_did_not_take() -> None:
    slot = LatestFrame()
    for i in range(3):
        slot.put(Frame(i, float(i), np.zeros((2, 2), np.uint8)))
    got = slot.take(0)
    assert got is not None
    assert got.index == 2
    assert slot.dropped == 2
    assert slot.take(0) is None


def test_lossless_slot_makes_the_reader_wait_instead() -> None:
    slot = LatestFrame(lossless=True)
    put_done = threading.Event()

    def producer() -> None:
        for i in range(3):
            slot.put(Frame(i, float(i), np.zeros((2, 2), np.uint8)))
        put_done.set()

    t = threading.Thread(target=producer)
    t.start()
    got: list[int] = []
    while len(got) < 3:
        frame = slot.take(1.0)
        if frame is not None:
            got.append(frame.index)
    t.join(2)
    assert put_done.is_set()
    assert got == [0, 1, 2]
    assert slot.dropped == 0


def test_control_characters_are_escaped_for_display() -> None:
    assert escape_text("01\x1d21\\A\r\n") == "01\\x1d21\\\\A\\x0d\\x0a"


def test_located_areas_alone_read_every_datamatrix_on_a_1080p_carton() -> None:
    # The pharmaceutical line: 12 GS1 DataMatrix of 10-14 mm among printed text and a logo.
    import cv2
    import zxingcpp

    decoder = FrameDecoder(formats=["DataMatrix"], locate=True, full_frame_every=10)
    for seed in (3, 11):
        bgr, truths = synth.carton_1080p(seed, 12)
        located = decoder.decode(bgr, whole=False)
        texts = {s.text for s in located.symbols}
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        full = zxingcpp.read_barcodes(
            gray, formats=zxingcpp.BarcodeFormat.DataMatrix, text_mode=zxingcpp.TextMode.Plain
        )
        assert {b.text for b in full} <= texts  # what zxing-cpp reads on the whole frame
        assert texts <= {t.text for t in truths}
        assert len(texts) >= 11
        assert {s.decoder for s in located.symbols} == {"zxing-region"}
        assert all(s.symbology == "]d2" for s in located.symbols)


def test_a_locating_decoder_decodes_the_whole_frame_every_nth_frame() -> None:
    decoder = FrameDecoder(formats=["DataMatrix"], locate=True, full_frame_every=3)
    blank = np.full((200, 300), 200, np.uint8)
    passes = [decoder.decode(blank).passes for _ in range(6)]
    whole = len(decoder.passes)
    assert [p == whole for p in passes] == [True, False, False, True, False, False]
    assert decoder.decode(blank, whole=True).passes == whole
