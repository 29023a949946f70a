"""Synthetic camera frames: trace codes on a carton face, moving, blurred and noisy.

Barcodes are drawn by zxing-cpp's writer (``create_barcode``); GS1 DataMatrix
symbols are made with its ``gs1`` option, so they carry FNC1 and read back as
``]d2`` with GS separators.  Used by the camera tests and by ``bench/decode.py``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zxingcpp
from numpy.typing import NDArray

from scanner_agent.lab.simulate import gtin_check_digit

GS = "\x1d"


@dataclass(frozen=True, slots=True)
class Code:
    """One symbol to draw: what it encodes and how the decoder should read it back."""

    kind: str
    """``cn20`` (Code 128) or ``gs1dm`` (GS1 DataMatrix)."""
    text: str
    """The decoded payload: cn20 digits, or the GS1 element string with GS separators."""
    hri: str
    """What is given to the writer (``(01)...(21)...`` for GS1)."""

    @property
    def scan(self) -> bytes:
        """What a scanner sends for it: AIM identifier then the payload."""
        return (("]C0" if self.kind == "cn20" else "]d2") + self.text).encode()


def cn20(rng: random.Random) -> Code:
    text = (
        "8"
        + f"{rng.randrange(10**6):06d}"
        + f"{rng.randrange(10**9):09d}"
        + f"{rng.randrange(10**4):04d}"
    )
    return Code("cn20", text, text)


def gs1dm(rng: random.Random) -> Code:
    body = "069" + f"{rng.randrange(10**10):010d}"
    gtin = body + gtin_check_digit(body)
    batch = f"B{rng.randrange(10**5):05d}"
    serial = f"{rng.randrange(10**10):010d}"
    text = f"01{gtin}1728123110{batch}{GS}21{serial}"
    return Code("gs1dm", text, f"(01){gtin}(17)281231(10){batch}(21){serial}")


def symbol(code: Code, module_px: int) -> NDArray[Any]:
    """The symbol as a grayscale image with quiet zones, ``module_px`` pixels per module.

    Code 128 uses one pixel less per module than DataMatrix (a 20-digit Code 128 is
    about 165 modules long).
    """
    if code.kind == "cn20":
        module_px = max(module_px - 1, 1)
        bc = zxingcpp.create_barcode(code.hri, zxingcpp.BarcodeFormat.Code128)
        img = np.asarray(bc.to_image(scale=module_px))
        # Linear symbols come out one module tall and stretched; make the bars 40 modules high.
        return cv2.resize(img[:1], (img.shape[1], 40 * module_px), interpolation=cv2.INTER_NEAREST)
    bc = zxingcpp.create_barcode(code.hri, zxingcpp.BarcodeFormat.DataMatrix, gs1=True)
    return np.asarray(bc.to_image(scale=module_px))


def frame(
    codes: list[tuple[Code, int, int]],
    *,
    size: tuple[int, int] = (1280, 720),
    module_px: int = 3,
    blur: float = 0.8,
    noise: float = 6.0,
    rng: np.random.Generator | None = None,
) -> NDArray[Any]:
    """A BGR frame with each code pasted at ``(x, y)`` on a carton-brown background."""
    w, h = size
    gray: NDArray[Any] = np.full((h, w), 170, np.uint8)
    gray[:, :] += np.linspace(0, 40, w, dtype=np.uint8)[None, :]
    for code, x, y in codes:
        img = symbol(code, module_px)
        ih, iw = img.shape
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + iw, w), min(y + ih, h)
        if x1 > x0 and y1 > y0:
            gray[y0:y1, x0:x1] = img[y0 - y : y1 - y, x0 - x : x1 - x]
    if blur:
        gray = cv2.GaussianBlur(gray, (0, 0), blur)
    if noise:
        g = rng or np.random.default_rng(0)
        gray = np.clip(gray + g.normal(0, noise, gray.shape), 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def carton_scene(seed: int = 1, count: int = 3) -> list[Code]:
    """``count`` codes for one carton face: cn20 Code 128 and GS1 DataMatrix, alternating."""
    rng = random.Random(seed)
    return [cn20(rng) if i % 2 == 0 else gs1dm(rng) for i in range(count)]


def layout(codes: list[Code], t: int, *, speed: int = 6) -> list[tuple[Code, int, int]]:
    """Positions at frame ``t``: a row of codes drifting right and down as a carton moves."""
    spots = [(40, 60), (480, 260), (860, 470), (60, 420), (560, 40), (900, 200)]
    return [(c, spots[i % 6][0] + speed * t, spots[i % 6][1] + t) for i, c in enumerate(codes)]


def write_video(
    path: Path, scenes: list[list[Code]], *, frames_per_scene: int = 12, fps: float = 15.0
) -> int:
    """An MJPG .avi in which each scene's codes drift through ``frames_per_scene`` frames.

    Returns the number of frames written.
    """
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (1280, 720))
    if not writer.isOpened():
        raise RuntimeError(f"Failed to open {path} as an MJPG video writer")
    rng = np.random.default_rng(3)
    n = 0
    try:
        for codes in scenes:
            for t in range(frames_per_scene):
                writer.write(frame(layout(codes, t), rng=rng))
                n += 1
            writer.write(frame([], rng=rng))  # an empty conveyor between cartons
            n += 1
    finally:
        writer.release()
    return n


# -- hard single images for the per-image guarantee ---------------------------------

HARD_KINDS = ("EAN13", "Code128", "QRCode", "DataMatrix")


@dataclass(frozen=True, slots=True)
class Truth:
    """A symbol drawn into a test image: its format and the text a decoder must return."""

    format: str
    text: str


def _payload(kind: str, rng: random.Random) -> tuple[str, str]:
    """(what the writer is given, the text read back) for one random symbol of ``kind``."""
    if kind == "EAN13":
        body = f"{rng.randrange(10**12):012d}"
        text = body + gtin_check_digit(body)
        return text, text
    if kind == "Code128":
        text = f"{rng.randrange(10**8):08d}LOT{rng.randrange(10**4):04d}"
        return text, text
    if kind == "QRCode":
        text = f"https://example.test/p/{rng.randrange(10**9):09d}"
        return text, text
    code = gs1dm(rng)
    return code.hri, code.text


def _render(kind: str, hri: str, module_px: int) -> NDArray[Any]:
    fmt = getattr(zxingcpp.BarcodeFormat, kind)
    bc = zxingcpp.create_barcode(hri, fmt, gs1=kind == "DataMatrix")
    img = np.asarray(bc.to_image(scale=module_px, add_quiet_zones=True))
    if kind in ("EAN13", "Code128"):  # the bars about half as tall as the symbol is long
        img = cv2.resize(
            img[:1], (img.shape[1], max(img.shape[1] // 2, 30)), interpolation=cv2.INTER_NEAREST
        )
    return np.pad(img, 4 * module_px, constant_values=255)


def hard_image(seed: int) -> tuple[str, NDArray[Any], list[Truth]]:
    """One grayscale test image with 1-3 symbols and one or two degradations.

    The degradation follows from the seed (rotation, blur, noise, low contrast,
    perspective, light-on-dark, several codes), so the set of images is the same on
    every run; the name says what was done.
    """
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    w, h = 800, 600
    canvas: NDArray[Any] = np.full((h, w), 235, np.uint8)
    count = 1 + seed % 3
    kinds = [HARD_KINDS[(seed + i) % len(HARD_KINDS)] for i in range(count)]
    truths = []
    cells = [(20, 20), (420, 20), (20, 320), (420, 320)]
    for i, kind in enumerate(kinds):
        hri, text = _payload(kind, rng)
        img = _render(kind, hri, 2 if kind in ("EAN13", "Code128") else 4)
        img = img[:270, :370]
        x, y = cells[i]
        x += rng.randrange(0, 370 - img.shape[1] + 1)
        y += rng.randrange(0, 270 - img.shape[0] + 1)
        canvas[y : y + img.shape[0], x : x + img.shape[1]] = img
        truths.append(Truth(kind, text))
    effects = []
    effect = seed % 7
    if effect == 0:
        angle = rng.uniform(-40, 40)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 0.9)
        canvas = cv2.warpAffine(canvas, m, (w, h), borderValue=235)
        effects.append(f"rotate{angle:+.0f}")
    elif effect == 1:
        sigma = rng.uniform(1.0, 1.6)
        canvas = cv2.GaussianBlur(canvas, (0, 0), sigma)
        effects.append(f"blur{sigma:.1f}")
    elif effect == 2:
        sd = rng.uniform(12, 22)
        canvas = np.clip(canvas + nprng.normal(0, sd, canvas.shape), 0, 255).astype(np.uint8)
        effects.append(f"noise{sd:.0f}")
    elif effect == 3:
        lo, hi = 110, 110 + rng.randrange(35, 55)
        canvas = (lo + canvas.astype(np.float32) * (hi - lo) / 255).astype(np.uint8)
        effects.append(f"contrast{hi - lo}")
    elif effect == 4:
        d = rng.uniform(0.06, 0.12)
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = np.float32([[w * d, h * d], [w * (1 - d / 2), 0], [w, h], [0, h * (1 - d)]])
        canvas = cv2.warpPerspective(
            canvas, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=235
        )
        effects.append(f"perspective{d:.2f}")
    elif effect == 5:
        canvas = 255 - canvas
        effects.append("inverted")
    else:
        canvas = cv2.GaussianBlur(canvas, (0, 0), 0.9)
        canvas = np.clip(canvas + nprng.normal(0, 8, canvas.shape), 0, 255).astype(np.uint8)
        effects.append("blur+noise")
    name = f"hard-{seed:03d}-{'+'.join(kinds)}-{'-'.join(effects)}"
    return name, canvas, truths


def worn_ean(seed: int) -> tuple[str, NDArray[Any], list[Truth]]:
    """A low-quality photo of one EAN-13: small, blurred, noisy, JPEG-compressed.

    Where zxing-cpp and ZBar part ways: on some of these one of them reads nothing, on
    others one reads a wrong number whose check digit still holds.
    """
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    hri, text = _payload("EAN13", rng)
    img = _render("EAN13", hri, 2)
    k = rng.uniform(0.6, 1.2)
    img = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    canvas: NDArray[Any] = np.full((300, 400), 225, np.uint8)
    canvas[20 : 20 + img.shape[0], 20 : 20 + img.shape[1]] = img[:280, :380]
    sigma = rng.uniform(0.8, 2.0)
    canvas = cv2.GaussianBlur(canvas, (0, 0), sigma)
    sd = rng.uniform(0, 14)
    canvas = np.clip(canvas + nprng.normal(0, sd, canvas.shape), 0, 255).astype(np.uint8)
    quality = rng.randrange(15, 60)
    _, jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
    canvas = cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE)
    name = f"worn-{seed:03d}-EAN13-scale{k:.2f}-blur{sigma:.1f}-noise{sd:.0f}-jpeg{quality}"
    return name, canvas, [Truth("EAN13", text)]


# -- 1080p carton frames for the pharmaceutical line ----------------------------------

PX_PER_MM = 6.4
"""1920 pixels over a 300 mm wide field of view: a camera framing one carton face."""


def carton_1080p(seed: int, count: int) -> tuple[NDArray[Any], list[Truth]]:
    """A 1920x1080 BGR frame of a carton face with ``count`` GS1 DataMatrix of 10-14 mm.

    Each symbol is turned by up to 20 degrees and sits on a white label; printed text
    lines and a dark logo block are the clutter a locator must not be fooled by.  Light
    falls off across the frame; blur and sensor noise are those of a 1080p industrial
    camera at a short exposure.
    """
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    w, h = 1920, 1080
    gray: NDArray[Any] = np.full((h, w), 180, np.uint8)
    gray += np.linspace(0, 35, w, dtype=np.uint8)[None, :]
    for i in range(14):  # printed text: the carton's artwork
        y = 40 + i * 75 + rng.randrange(0, 20)
        x = rng.randrange(20, 1300)
        text = f"BATCH {rng.randrange(10**5):05d}  EXP 12/28  {rng.choice(['Rx only', 'Store below 25C', 'ACME Pharma'])}"
        cv2.putText(gray, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, rng.uniform(0.6, 1.2), 40, 2)
    cv2.rectangle(gray, (1500, 80), (1800, 260), 50, -1)  # a logo
    truths = []
    cols, rows = 4, 3
    cells = rng.sample([(c, r) for c in range(cols) for r in range(rows)], count)
    for c, r in cells:
        code = gs1dm(rng)
        side_px = round(rng.uniform(10, 14) * PX_PER_MM)
        bc = zxingcpp.create_barcode(code.hri, zxingcpp.BarcodeFormat.DataMatrix, gs1=True)
        modules = np.asarray(bc.to_image(scale=1, add_quiet_zones=False))
        sym = cv2.resize(modules, (side_px, side_px), interpolation=cv2.INTER_AREA)
        label = np.full((side_px * 2, side_px * 2), 245, np.uint8)
        label[side_px // 2 : side_px // 2 + side_px, side_px // 2 : side_px // 2 + side_px] = sym
        angle = rng.uniform(-20, 20)
        m = cv2.getRotationMatrix2D((side_px, side_px), angle, 1.0)
        label = cv2.warpAffine(label, m, (side_px * 2, side_px * 2), borderValue=0)
        mask = cv2.warpAffine(np.full_like(label, 255), m, (side_px * 2, side_px * 2))
        x = c * (w // cols) + rng.randrange(20, w // cols - 2 * side_px - 20)
        y = r * (h // rows) + rng.randrange(20, h // rows - 2 * side_px - 20)
        roi = gray[y : y + 2 * side_px, x : x + 2 * side_px]
        roi[mask > 0] = label[mask > 0]
        truths.append(Truth("DataMatrix", code.text))
    gray = cv2.GaussianBlur(gray, (0, 0), 0.7)
    gray = np.clip(gray + nprng.normal(0, 4, gray.shape), 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), truths
