"""Where each pass of a :class:`drivers.decoders.FrameDecoder` looks, in one frame.

Passes after zxing-cpp's first look only where the reads so far leave something
unexplained: a textured area (:func:`drivers.locate.candidates`) that lies in no symbol
read, a conflict :func:`drivers.decode_rules.merge` did not settle, or the whole frame
when nothing was read or the unexplained areas cover most of it.  These functions decide
that from a frame's :class:`Work` in progress; the passes themselves, and the order they
run in, are :mod:`drivers.decoders`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drivers import locate
from drivers.decode_rules import WEAK_LINEAR, merge
from drivers.readers import ZBAR_SYMBOLS
from drivers.symbols import LINEAR, Symbol, bounding_box, clip, overlap, symbol_box

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Image = NDArray[Any]
    """An OpenCV frame: 8-bit grayscale (h, w) or BGR (h, w, 3)."""
else:
    Image = Any

Box = tuple[int, int, int, int]
"""``(x, y, w, h)`` in frame pixels."""

SMALL_FRAME = 500_000
"""Pixels up to which zxing-cpp's first pass keeps its own ``try_invert``: on a small image a
second whole pass costs less than finding and inverting the unexplained areas."""
EXPLAINED_MARGIN = 0.35
"""A textured area counts as explained by a read when it lies mostly inside the read's box
grown by this much on each side (the printed digits under an EAN-13, the quiet zone)."""


@dataclass
class Work:
    """One frame's decoding in progress."""

    gray: Image
    reads: list[Symbol]
    errors: list[str]
    areas: list[Box] | None = None

    def textured_areas(self) -> list[Box]:
        """The frame's textured areas (:func:`drivers.locate.candidates`), found once."""
        if self.areas is None:
            self.areas = locate.candidates(self.gray)
        return self.areas


def grown(box: Box, k: float, px: int) -> Box:
    """``box`` grown by ``k`` of its size plus ``px`` pixels on each side (a quiet zone)."""
    x, y, w, h = box
    mx, my = round(w * k) + px, round(h * k) + px
    return x - mx, y - my, w + 2 * mx, h + 2 * my


def unexplained(work: Work) -> list[Box]:
    """Textured areas of the frame that lie in no symbol read so far."""
    boxes = [bounding_box(s.position, EXPLAINED_MARGIN) for s in work.reads]
    return [
        area for area in work.textured_areas() if all(overlap(area, box) < 0.6 for box in boxes)
    ]


def symbol_like(work: Work, areas: list[Box], formats: tuple[str, ...]) -> list[Box]:
    """``areas`` less lines of text: matrix codes are about square, bars run one way."""
    matrix_only = bool(formats) and not any(f in LINEAR for f in formats)
    return [
        area
        for area in areas
        if max(area[2], area[3]) <= 2.5 * min(area[2], area[3])
        or (not matrix_only and locate.bar_like(work.gray, area))
    ]


def inverted_targets(work: Work) -> list[Box]:
    """Where to look for light-on-dark symbols: the whole frame when nothing was read,
    else every textured area no read explains (a symbol zxing-cpp's first pass did not
    read may be an inverted one), or the whole frame when those cover most of it.

    This stands in for zxing-cpp's own ``try_invert`` (part of its defaults, so part of
    the guarantee), which inverts the whole frame on every call and doubles its cost;
    reading the inverted image also finds light-on-dark linear codes ``try_invert``
    misses."""
    h, w = work.gray.shape[:2]
    if not work.reads:
        return [(0, 0, w, h)]
    if work.gray.size <= SMALL_FRAME:
        return []  # the first pass ran with try_invert
    crops = [clip(grown(area, 0.15, 8), w, h) for area in unexplained(work)]
    if sum(cw * ch for _, _, cw, ch in crops) > 0.5 * w * h:
        return [(0, 0, w, h)]
    return [c for c in crops if c[2] > 8 and c[3] > 8]


def retry_targets(work: Work, formats: tuple[str, ...]) -> list[Box]:
    """Where a retry pass should look: the whole frame when nothing was read; else the
    symbols of conflicts no rule settled and the symbol-like areas no read explains
    (ZBar, for the guarantee, looks at every unexplained area; retries, which only add
    to it, skip lines of text)."""
    h, w = work.gray.shape[:2]
    if not work.reads:
        return [(0, 0, w, h)]
    unsettled = merge(work.reads)[2]
    boxes = [symbol_box(s) for s in unsettled]
    areas = symbol_like(work, unexplained(work), formats)
    boxes += [grown(area, 0.15, 8) for area in areas]
    targets = [box for box in (clip(b, w, h) for b in boxes) if box[2] > 8 and box[3] > 8]
    if sum(bw * bh for _, _, bw, bh in targets) > 0.5 * w * h:
        return [(0, 0, w, h)]
    return targets


def zbar_crops(work: Work) -> list[Box] | None:
    """Where ZBar should look after zxing-cpp's reads: each textured area no read explains,
    grown by a quiet zone, and each symbol :func:`second_opinion_crops` names; None for
    the whole frame, when those areas cover much of it."""
    h, w = work.gray.shape[:2]
    crops = [clip(grown(area, 0.15, 8), w, h) for area in unexplained(work)]
    if sum(cw * ch for _, _, cw, ch in crops) > 0.5 * w * h:
        return None
    return crops + second_opinion_crops(work)


def second_opinion_crops(work: Work) -> list[Box]:
    """The whole symbol around each read of a format one check digit guards."""
    h, w = work.gray.shape[:2]
    return [
        clip(symbol_box(s), w, h)
        for s in work.reads
        if s.format in WEAK_LINEAR and s.format in ZBAR_SYMBOLS
    ]
