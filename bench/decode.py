"""Camera decoding: our default decoder beside zxing-cpp and pyzbar alone, same images, same run.

Run it by hand (never from the test suite)::

    .venv/bin/python bench/decode.py [--corpus ../shared/corpus/zxing-samples] [--frames 90]

Measures, on one core (the process is pinned to one CPU, OpenCV to one thread):

* per folder of the shared zxing-cpp corpus, with the folder's symbology as
  the format hint: images whose expected text was read (``ours``: the
  project's default decoder, :class:`drivers.decoders.FrameDecoder` with
  ``decoder = "auto"``; ``both``: ``decoder = "zxing"``, no ZBar; ``zxing_cpp`` and
  ``pyzbar``: each library called alone with its defaults), texts that were
  read but are not the expected one (``wrong_*``), and the median time per
  image (each image's time the best of 3 runs, for every decoder alike).  Text
  is compared with CRLF folded to LF; ``<stem>.bin`` files are compared as bytes.  ``ours_ms_median`` and ``pyzbar_ms_median`` are over the
  same images: the folders pyzbar can read (it has no DataMatrix);
* ``fps_720p``: frames per second through ``FrameDecoder.decode`` on 1280x720
  BGR frames with 3 codes each (cn20 Code 128 and GS1 DataMatrix, moving,
  blurred, noisy), format hints DataMatrix and Code128; the same without hints
  and pyzbar's rate on the same frames (Code 128 only: it reads no DataMatrix);
* ``fps_1080p_datamatrix``: the pharmaceutical line, 1920x1080 carton frames with
  1-12 GS1 DataMatrix of 10-14 mm each (6.4 px/mm, ``tests/camera/synth.carton_1080p``),
  through the camera source's own decoder with the shipped settings
  (:func:`drivers.camera.frame_decoder` of the defaults, ``formats = ["DataMatrix"]``:
  areas located first, the whole frame every 10th frame), beside zxing-cpp alone on the
  whole frame in the same run (``fps_1080p_datamatrix_zxing_full_frame``) and the
  shipped settings with the default formats (Code 128, DataMatrix, QR);
  ``codes_read`` beside each.  ``load_avg`` is the machine's 1-minute load before and
  after: other work on the box lowers every figure alike.

Progress goes to stderr; stdout gets one JSON object (the last line).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import zxingcpp  # noqa: E402

from drivers.decoders import FrameDecoder, pyzbar_available  # noqa: E402
from tests.camera import synth  # noqa: E402

FOLDER_FORMAT = {
    "code128": "Code128",
    "datamatrix": "DataMatrix",
    "ean13": "EAN13",
    "qrcode": "QRCode",
}
PYZBAR_SYMBOL = {"Code128": "CODE128", "EAN13": "EAN13", "QRCode": "QRCODE"}
SECOND_SYMBOLS = {"qrcode-2/16.webp": "[外側QRコード]"}
"""A real second symbol in an image (a "double QR"), not a misread."""


def expected(image: Path) -> str | bytes:
    txt = image.with_suffix(".txt")
    if txt.exists():
        return txt.read_text(encoding="utf-8").replace("\r\n", "\n")
    return image.with_suffix(".bin").read_bytes()


def judge(key: str, exp: str | bytes, reads: list[tuple[str, bytes]]) -> tuple[bool, int]:
    """(expected text found, number of other texts that are not a known second symbol)."""
    ok = False
    wrong = 0
    for text, payload in reads:
        if (payload if isinstance(exp, bytes) else text.replace("\r\n", "\n")) == exp:
            ok = True
        elif not text.startswith(SECOND_SYMBOLS.get(key, "\0")):
            wrong += 1
    return ok, wrong


def zxing_alone(gray: Any, fmt: Any) -> Any:
    """zxing-cpp as an application would call it: its defaults, the format hint, plain text."""
    return zxingcpp.read_barcodes(gray, formats=fmt, text_mode=zxingcpp.TextMode.Plain)


def timed(fn: Any, *args: Any, repeats: int = 3) -> tuple[Any, float]:
    """The result and the best of ``repeats`` times, in ms: on a box other work loads, the
    least-disturbed run is the decoder's own cost (each side measured the same way)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, (time.perf_counter() - start) * 1000)
    return out, best


def corpus_figures(corpus: Path, have_pyzbar: bool) -> dict[str, Any]:
    pz: Any = None
    if have_pyzbar:
        from pyzbar import pyzbar

        pz = pyzbar
    folders: dict[str, Any] = {}
    ours_ms_shared: list[float] = []
    pyzbar_ms_shared: list[float] = []
    ours_ms_all: list[float] = []
    for folder in sorted(p for p in corpus.iterdir() if p.is_dir()):
        fmt = FOLDER_FORMAT.get(folder.name.rsplit("-", 1)[0])
        if fmt is None:
            continue
        ours = FrameDecoder(formats=[fmt])  # the shipped decoder: "auto"
        both = FrameDecoder("zxing", [fmt])  # zxing-cpp and its retries, no ZBar
        zx_format = zxingcpp.barcode_format_from_str(fmt)
        counted = ["images", "ours", "both", "zxing_cpp", "pyzbar"]
        row: dict[str, Any] = dict.fromkeys([*counted, *(f"wrong_{k}" for k in counted[1:])], 0)
        ms: dict[str, list[float]] = {"ours": [], "zxing_cpp": [], "pyzbar": []}
        for image in sorted(folder.iterdir()):
            if image.suffix not in (".png", ".jpg", ".webp"):
                continue
            key = f"{folder.name}/{image.name}"
            exp = expected(image)
            bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
            if bgr is None:
                print(f"{image}: OpenCV cannot read it, skipped", file=sys.stderr)
                continue
            gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            row["images"] += 1

            result, t = timed(ours.decode, bgr)
            ok, wrong = judge(key, exp, [(s.text, s.payload) for s in result.symbols])
            row["ours"] += ok
            row["wrong_ours"] += wrong
            ms["ours"].append(t)
            ours_ms_all.append(t)
            if both is not None:  # the "both" column: decoder = "zxing"
                result = both.decode(bgr)
                ok, wrong = judge(key, exp, [(s.text, s.payload) for s in result.symbols])
                row["both"] += ok
                row["wrong_both"] += wrong

            zx, t = timed(zxing_alone, gray, zx_format)
            ok, wrong = judge(key, exp, [(b.text, bytes(b.bytes)) for b in zx])
            row["zxing_cpp"] += ok
            row["wrong_zxing_cpp"] += wrong
            ms["zxing_cpp"].append(t)

            if pz is not None and fmt in PYZBAR_SYMBOL:
                symbols = [pz.ZBarSymbol[PYZBAR_SYMBOL[fmt]]]
                reads, t = timed(pz.decode, gray, symbols)
                ok, wrong = judge(
                    key, exp, [(r.data.decode("utf-8", "replace"), bytes(r.data)) for r in reads]
                )
                row["pyzbar"] += ok
                row["wrong_pyzbar"] += wrong
                ms["pyzbar"].append(t)
                pyzbar_ms_shared.append(t)
                ours_ms_shared.append(ms["ours"][-1])
        for name, values in ms.items():
            row[f"{name}_ms_median"] = round(statistics.median(values), 3) if values else None
        folders[folder.name] = row
        print(
            f"{folder.name}: {row['images']} images, ours {row['ours']}, zxing-cpp "
            f"{row['zxing_cpp']}, pyzbar {row['pyzbar']}",
            file=sys.stderr,
        )
    totals = {
        k: sum(r[k] for r in folders.values())
        for k in ("images", "ours", "both", "zxing_cpp", "pyzbar")
    }
    wrong_totals = {
        k: sum(r[k] for r in folders.values())
        for k in next(iter(folders.values()))
        if k.startswith("wrong_")
    }
    ours_med = statistics.median(ours_ms_shared) if ours_ms_shared else None
    pz_med = statistics.median(pyzbar_ms_shared) if pyzbar_ms_shared else None
    return {
        "folders": folders,
        "totals": totals,
        "wrong": wrong_totals,
        "ours_ms_median": round(ours_med, 3) if ours_med else None,
        "pyzbar_ms_median": round(pz_med, 3) if pz_med else None,
        "speedup_vs_pyzbar": round(pz_med / ours_med, 2) if ours_med and pz_med else None,
        "ours_ms_median_all_folders": round(statistics.median(ours_ms_all), 3),
    }


def fps_figures(frames: int, have_pyzbar: bool) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(1)
    scenes = [synth.carton_scene(seed, 3) for seed in range(frames // 15 + 1)]
    video = []
    for i in range(frames):
        codes = scenes[i // 15]
        video.append((codes, synth.frame(synth.layout(codes, i % 15), rng=rng)))
    out: dict[str, Any] = {}
    runs = [("fps_720p", FrameDecoder("zxing", ["DataMatrix", "Code128"]))]
    runs.append(("fps_720p_no_hints", FrameDecoder("zxing", [])))
    if have_pyzbar:
        runs.append(("fps_720p_pyzbar_code128", FrameDecoder("pyzbar", ["Code128"])))
    for key, decoder in runs:
        read = 0
        start = time.perf_counter()
        for codes, bgr in video:
            texts = {s.text for s in decoder.decode(bgr).symbols}
            read += sum(c.text in texts for c in codes)
        elapsed = time.perf_counter() - start
        out[key] = round(frames / elapsed, 1)
        out[f"{key}_codes_read"] = f"{read}/{3 * frames}"
        print(f"{key}: {out[key]} frames/s, {read}/{3 * frames} codes", file=sys.stderr)
    return out


def fps_1080p(frames: int) -> dict[str, Any]:
    from drivers.camera import frame_decoder
    from drivers.registry import resolve_options

    video = [synth.carton_1080p(seed, 1 + (seed * 5) % 12) for seed in range(frames)]
    total = sum(len(truths) for _, truths in video)
    shipped = resolve_options("camera", {"device": "-", "formats": ["DataMatrix"]}, "bench")
    defaults = resolve_options("camera", {"device": "-"}, "bench")
    dm = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.DataMatrix)

    def zxing_full(bgr: Any) -> set[str]:
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        return {
            b.text
            for b in zxingcpp.read_barcodes(gray, formats=dm, text_mode=zxingcpp.TextMode.Plain)
        }

    out: dict[str, Any] = {"frames_1080p": frames, "codes_1080p": total}
    runs: list[tuple[str, Any]] = [
        ("fps_1080p_datamatrix", frame_decoder(shipped)),
        ("fps_1080p_datamatrix_zxing_full_frame", None),
        ("fps_1080p_default_formats", frame_decoder(defaults)),
    ]
    for key, decoder in runs:
        read = 0
        start = time.perf_counter()
        for bgr, truths in video:
            texts = (
                zxing_full(bgr)
                if decoder is None
                else {s.text for s in decoder.decode(bgr).symbols}
            )
            read += len(texts & {t.text for t in truths})
        elapsed = time.perf_counter() - start
        out[key] = round(frames / elapsed, 1)
        out[f"{key}_codes_read"] = f"{read}/{total}"
        print(f"{key}: {out[key]} frames/s, {read}/{total} codes", file=sys.stderr)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = (
        Path(os.environ.get("SCANNER_AGENT_SHARED", ROOT.parent / "shared"))
        / "corpus"
        / "zxing-samples"
    )
    parser.add_argument("--corpus", type=Path, default=default)
    parser.add_argument("--frames", type=int, default=90, help="720p frames to time (default 90)")
    parser.add_argument(
        "--frames-1080p", type=int, default=40, help="1080p DataMatrix frames to time (default 40)"
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)
    have_pyzbar = pyzbar_available()
    if not have_pyzbar:
        print("pyzbar or libzbar0 missing: pyzbar columns are 0", file=sys.stderr)
    result: dict[str, Any] = {
        "bench": "decode",
        "python": platform.python_version(),
        "zxing_cpp": version("zxing-cpp"),
        "pyzbar_version": version("pyzbar") if have_pyzbar else None,
        "opencv": cv2.__version__,
        "pyzbar": have_pyzbar,
        "cores_used": 1,
    }
    if args.corpus.is_dir():
        result.update(corpus_figures(args.corpus, have_pyzbar))
    else:
        print(f"corpus not found at {args.corpus}: corpus figures skipped", file=sys.stderr)
    result["load_avg_before"] = round(os.getloadavg()[0], 2)
    result.update(fps_figures(args.frames, have_pyzbar))
    result.update(fps_1080p(args.frames_1080p))
    result["load_avg_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
