"""Where in a frame a symbol may be: dense edge texture, found on a reduced copy.

Barcodes and matrix codes are small areas packed with strong edges, on cartons
that are mostly plain.  :func:`candidates` finds such areas on a copy of the
frame reduced to at most ``max_side`` pixels (edge strength, closing to join the
modules of one symbol, connected components) and returns their boxes in frame
pixels.  It costs a few milliseconds on a 1080p frame, a fraction of one
zxing-cpp pass, and it serves two purposes:

* the frame decoder asks whether every textured area is explained by a code
  already read; only then may it skip the second library (:mod:`drivers.decoders`);
* the region decoder decodes only the candidate areas of a large frame instead
  of the whole of it (``locate = true``), which is what keeps 1080p at line speed.

It never decides that something *is* a code: a false candidate costs one small
decode, a missed one is what the whole-frame pass is for.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from drivers.symbols import Box

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Image = NDArray[Any]
else:
    Image = Any

EDGE_THRESHOLD = 40
"""Edge strength (mean absolute Sobel response, 0-255) that counts as a module edge: a
40-level step between bar and space still passes, paper grain and JPEG noise do not."""


def candidates(
    gray: Image,
    *,
    max_side: int = 640,
    min_factor: int = 2,
    min_side: int = 14,
    max_side_px: int = 0,
    min_fill: float = 0.35,
) -> list[Box]:
    """Boxes (frame pixels) of textured areas that may hold a symbol, largest first.

    Args:
        gray: 8-bit grayscale frame.
        max_side: the frame is reduced by a whole factor until its longer side is at
            most this (the cost is in proportion to the reduced area).
        min_side: areas whose shorter side is below this many frame pixels are noise.
        max_side_px: areas longer than this are dropped (0: no limit) - text blocks and
            edges of the carton when only small symbols are expected.
        min_fill: share of the area's box the texture must fill (a symbol is compact).
    """
    import cv2
    import numpy as np

    h, w = gray.shape[:2]
    f = max(min_factor, math.ceil(max(h, w) / max_side))
    small = cv2.resize(gray, (w // f, h // f), interpolation=cv2.INTER_AREA) if f > 1 else gray
    gx = cv2.convertScaleAbs(cv2.Sobel(small, cv2.CV_16S, 1, 0, ksize=3), alpha=0.25)
    gy = cv2.convertScaleAbs(cv2.Sobel(small, cv2.CV_16S, 0, 1, ksize=3), alpha=0.25)
    edges = cv2.max(gx, gy)
    strong = (edges >= EDGE_THRESHOLD).astype(np.uint8)
    k = max(3, 2 * round(6 / f) + 1)  # join modules of one symbol: ~6 frame pixels apart
    joined = cv2.morphologyEx(
        strong, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    )
    mask = cv2.morphologyEx(joined, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    boxes: list[tuple[int, Box]] = []
    for x, y, bw, bh, area in stats[1:count].tolist():
        if min(bw, bh) * f < min_side or area < min_fill * bw * bh:
            continue
        if max_side_px and max(bw, bh) * f > max_side_px:
            continue
        boxes.append((area, (x * f, y * f, bw * f, bh * f)))
    boxes.sort(key=lambda item: -item[0])
    return [box for _, box in boxes]


def bar_like(gray: Image, box: Box, *, min_coherence: float = 0.55) -> bool:
    """Whether the edges in ``box`` run mostly one way, as a linear symbol's bars do.

    The coherence of the gradient's structure tensor is near 1 for parallel bars at any
    angle and well below for text, whose strokes run every way.  Matrix codes are not
    bar-like either: a caller keeps about-square areas whatever this says.
    """
    import cv2
    import numpy as np

    x, y, w, h = box
    f = max(1, min(w, h) // 48)
    patch = gray[y : y + h : f, x : x + w : f].astype(np.float32)
    if patch.size < 16:
        return False
    gx = cv2.Sobel(patch, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(patch, cv2.CV_32F, 0, 1, ksize=3)
    jxx, jyy, jxy = float((gx * gx).sum()), float((gy * gy).sum()), float((gx * gy).sum())
    total = jxx + jyy
    if total <= 0:
        return False
    return math.sqrt((jxx - jyy) ** 2 + 4 * jxy * jxy) / total >= min_coherence
