"""What decoding a frame gives: symbols, rejected reads, and their geometry.

Kept apart from the decoders so that the readers (:mod:`drivers.readers`), the
misread rules (:mod:`drivers.decode_rules`) and the frame decoder
(:mod:`drivers.decoders`) share one definition without importing each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

Point = tuple[int, int]
Quad = tuple[Point, Point, Point, Point]
"""Corners of a symbol in frame pixels: top-left, top-right, bottom-right, bottom-left
(as the symbol reads, so a rotated symbol's top-left is not the frame's)."""
Box = tuple[int, int, int, int]
"""An upright rectangle ``(x, y, w, h)`` in frame pixels."""

LINEAR = frozenset(
    {
        "Codabar",
        "Code39",
        "Code93",
        "Code128",
        "DataBar",
        "DataBarExpanded",
        "DataBarLimited",
        "EAN8",
        "EAN13",
        "ITF",
        "UPCA",
        "UPCE",
    }
)
"""Formats read along scan lines (the others are matrix codes)."""


@dataclass(frozen=True, slots=True)
class Symbol:
    """One code read from a frame."""

    text: str
    """The payload as text, control characters (GS) kept, no symbology identifier."""
    payload: bytes
    """The payload as bytes: ``text`` in UTF-8, or the raw bytes of a binary symbol."""
    symbology: str
    """AIM symbology identifier (``]d2`` GS1 DataMatrix, ``]C0`` Code 128), or ``""``."""
    format: str
    """Canonical format name (see :data:`drivers.decoders.FORMATS`)."""
    position: Quad
    """Corners in frame pixels (the region of interest already added back)."""
    decoder: str
    """The pass that read it: ``zxing``, ``zxing-histogram``, ..., ``pyzbar``."""
    raw: bytes = b""
    """The symbol's bytes before any character set was applied, when the library gives
    them (zxing-cpp does; ZBar gives only its own transcoding): the misread rules compare
    two libraries' texts through them."""
    lines: int = 0
    """Scan lines that decoded this same text (ZBar's quality), 0 when the library does not
    say (zxing-cpp)."""

    @property
    def scan(self) -> bytes:
        """What a handheld scanner would send: identifier then payload (for the parser)."""
        return self.symbology.encode("ascii", "replace") + self.payload

    @property
    def library(self) -> str:
        """``zxing`` or ``pyzbar``: which library read it, whatever the pass."""
        return self.decoder.split("-", 1)[0]

    def moved(self, dx: float = 0, dy: float = 0, k: float = 1.0) -> Symbol:
        """The same read with its corners scaled by ``k`` then shifted by ``(dx, dy)``."""
        quad = tuple((round(x * k + dx), round(y * k + dy)) for x, y in self.position)
        return replace(self, position=quad)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A read left out of a frame's result, and the rule that showed it to be a misread."""

    symbol: Symbol
    rule: str
    """One of :data:`drivers.decode_rules.RULES`."""
    kept: Symbol | None = None
    """The read of the same symbol that was kept instead, if any."""


@dataclass(frozen=True, slots=True)
class FrameResult:
    """What decoding one frame gave."""

    symbols: tuple[Symbol, ...]
    elapsed_ms: float
    """Time spent in this call, all passes included."""
    passes: int
    """Passes run (1 when the first found everything there was to find)."""
    over_budget: bool
    """Later passes were skipped because ``budget_ms`` was spent."""
    errors: tuple[str, ...] = ()
    """Library faults caught while decoding this frame, one line each."""
    rejections: tuple[Rejection, ...] = ()
    """Reads shown to be misreads by a rule (:mod:`drivers.decode_rules`)."""


def bounding_box(quad: Quad, margin: float = 0.0) -> Box:
    """The upright box around ``quad``, grown by ``margin`` times its size on each side."""
    xs = [p[0] for p in quad]
    ys = [p[1] for p in quad]
    w, h = max(xs) - min(xs), max(ys) - min(ys)
    mx, my = round(w * margin), round(h * margin)
    return min(xs) - mx, min(ys) - my, w + 2 * mx + 1, h + 2 * my + 1


def symbol_box(s: Symbol) -> Box:
    """The area a read's whole symbol may cover: its box, and for a linear read (whose quad
    may be a few scan lines thin) a square as wide as the read is long, centred on it."""
    box = bounding_box(s.position, 0.15)
    if s.format not in LINEAR:
        return box
    x, y, w, h = box
    side = round(1.3 * max(w, h))
    cx, cy = x + w / 2, y + h / 2
    return round(cx - side / 2), round(cy - side / 2), side, side


def overlap(a: Box, b: Box) -> float:
    """The share of the smaller box that lies inside the other (0 to 1)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = min(ax + aw, bx + bw) - max(ax, bx)
    iy = min(ay + ah, by + bh) - max(ay, by)
    if ix <= 0 or iy <= 0:
        return 0.0
    return ix * iy / max(min(aw * ah, bw * bh), 1)


def clip(box: Box, width: int, height: int) -> Box:
    """``box`` cut to a ``width`` x ``height`` frame (may come out empty: w or h 0)."""
    x, y, w, h = box
    x0, y0 = max(x, 0), max(y, 0)
    return x0, y0, max(min(x + w, width) - x0, 0), max(min(y + h, height) - y0, 0)


def thickness(s: Symbol) -> float:
    """A linear read's extent across its bars: how many scan lines agreed on it."""
    (x0, y0), _, _, (x3, y3) = s.position
    return math.hypot(x3 - x0, y3 - y0)


def length(s: Symbol, along: Symbol) -> float:
    """The extent of ``s`` along the reading direction of ``along`` (a linear read)."""
    (x0, y0), (x1, y1), _, _ = along.position
    norm = math.hypot(x1 - x0, y1 - y0)
    if norm < 1:
        return 0.0
    ux, uy = (x1 - x0) / norm, (y1 - y0) / norm
    proj = [x * ux + y * uy for x, y in s.position]
    return max(proj) - min(proj)


def same_line(a: Symbol, b: Symbol) -> bool:
    """Two linear reads run the same way (within 10 degrees) over most of one's length."""
    (ax0, ay0), (ax1, ay1), _, _ = a.position
    (bx0, by0), (bx1, by1), _, _ = b.position
    la = math.hypot(ax1 - ax0, ay1 - ay0)
    lb = math.hypot(bx1 - bx0, by1 - by0)
    if la < 1 or lb < 1:
        return False
    ux, uy = (ax1 - ax0) / la, (ay1 - ay0) / la
    cos = abs(ux * (bx1 - bx0) / lb + uy * (by1 - by0) / lb)
    if cos < math.cos(math.radians(10)):
        return False
    b_lo, b_hi = sorted(((bx0 - ax0) * ux + (by0 - ay0) * uy, (bx1 - ax0) * ux + (by1 - ay0) * uy))
    return min(la, b_hi) - max(0.0, b_lo) > 0.8 * min(la, lb)
