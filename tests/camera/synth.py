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
