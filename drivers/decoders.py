"""Barcode decoders for camera frames, behind one interface.

A :class:`FrameDecoder` reads every code in one image and returns a
:class:`~drivers.symbols.FrameResult`.  The default, ``decoder = "auto"``, is
built for one promise, checked image by image in the tests: **the codes it
reports include every code that zxing-cpp with its default options, or ZBar
(pyzbar) for the formats it reads, reports on the same image, and no wrong text
where either library alone reads the right one**, unless a named rule shows a
read to be a misread (:mod:`drivers.decode_rules`).  For that it never stops at
the first library that finds something:

1. ``zxing``: zxing-cpp with its defaults (every orientation, downscaled copies)
   and the format hints, in plain text mode so a GS1 symbol keeps its GS (0x1D)
   separators and its AIM identifier (``]d2``, ``]C1``, ``]Q3``); then
   ``zxing-inverted``, the inverted image, on the whole frame when nothing was read,
   else, on a frame above :data:`drivers.decode_targets.SMALL_FRAME`, on the textured
   areas no read explains.
   Together they read what zxing-cpp's defaults read: its ``try_invert`` (kept on
   small images) inverts the whole frame on every call, which doubles the cost of a
   large frame whose codes were all read at once.
2. ``pyzbar`` (when libzbar is installed and a hinted format is one ZBar reads):
   on the whole frame unless every textured area of the frame
   (:func:`drivers.locate.candidates`) lies in a symbol already read; then only a
   second opinion on each read of a format guarded by one check digit (EAN/UPC,
   ITF, Codabar, Code 39), on that symbol's crop.  That is what keeps the usual
   frame cheaper than ZBar alone.
3. retries while something is left unexplained (nothing read, a textured area
   with no code, a conflict no rule settled), each until ``budget_ms`` is spent:
   a global-histogram binarizer (uneven print), a 3x3 median filter (speckle,
   JPEG) and a 1.5x upscale (thin bars).

Every read of every pass is merged by :func:`drivers.decode_rules.merge`.  Where each
pass after the first looks is :mod:`drivers.decode_targets`; the options a config gives
are checked by :mod:`drivers.decode_options` (re-exported here).

``decoder = "zxing"`` is steps 1 and 3 without ZBar, ``"pyzbar"`` ZBar alone,
``"both"`` is ``"auto"`` that refuses to start without libzbar.  The libraries are
imported lazily: the config can name a decoder, and ``check-config`` can validate
it, without loading them.

Faults: every library call is wrapped, so an exception from a bad frame becomes
an entry in :attr:`FrameResult.errors` and the caller counts it; the decoder
stays usable.  A crash inside the C code (a segfault) cannot be caught
in-process: pyzbar is fed only C-contiguous 8-bit grayscale buffers with explicit
width and height (its known crashes come from strided or mis-sized arrays), and
the agent relies on systemd's ``Restart=`` for the rest, losing nothing that was
committed to the outbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from drivers.decode_options import (
    DECODERS,
    FORMATS,
    check_decoder,
    check_roi,
    format_name,
    format_names,
)
from drivers.decode_rules import merge
from drivers.decode_targets import (
    SMALL_FRAME,
    Box,
    Work,
    grown,
    inverted_targets,
    retry_targets,
    second_opinion_crops,
    symbol_like,
    zbar_crops,
)
from drivers.readers import (
    ZBAR_SYMBOLS,
    DecoderUnavailable,
    PyzbarReader,
    ZxingReader,
    load_pyzbar,
    load_zxing,
    pyzbar_available,
)
from drivers.symbols import LINEAR, FrameResult, Quad, Rejection, Symbol, clip, overlap

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Image = NDArray[Any]
    """An OpenCV frame: 8-bit grayscale (h, w) or BGR (h, w, 3)."""
else:
    Image = Any

__all__ = [
    "DECODERS",
    "FORMATS",
    "LINEAR",
    "DecoderUnavailable",
    "FrameDecoder",
    "FrameResult",
    "Quad",
    "Rejection",
    "Symbol",
    "check_decoder",
    "check_roi",
    "format_name",
    "format_names",
    "load_pyzbar",
    "load_zxing",
    "pyzbar_available",
]

Pass = Callable[["Image"], list[Symbol]]
RETRIES = ("zxing-histogram", "zxing-median", "zxing-upscale")
"""Retry passes, in order; each runs only while the frame is unresolved and in budget, on the
whole frame when nothing was read, else on what is left unexplained."""


class FrameDecoder:
    """Reads every code in a frame (see the module docstring for the passes).

    Args:
        decoder: ``auto`` (default), ``zxing``, ``pyzbar`` or ``both``.
        formats: canonical format names to look for; empty means every format the
            library reads (slower: format hints speed zxing-cpp up several times).
        budget_ms: after this many milliseconds no retry pass starts (0: no limit).
            zxing-cpp's pass, and ZBar's where it is needed, always run.
        retry: run the retry passes on frames left unresolved.
        roi: ``(x, y, w, h)`` region of the frame to decode, or ``None`` for all of it.
        locate: decode only the areas :func:`drivers.locate.candidates` finds, except on
            every ``full_frame_every``-th call (the first included), which decodes the whole
            frame as above: line speed on large frames, with a regular full look for a symbol
            the locator missed.  Off, every call decodes the whole frame.
        full_frame_every: with ``locate``, how often the whole frame is decoded (0: never).

    Raises:
        ConfigError: unknown decoder or format, a bad region, or formats pyzbar cannot read.
        DecoderUnavailable: the library is not installed (``auto`` goes on without ZBar).
    """

    def __init__(
        self,
        decoder: str = "auto",
        formats: Sequence[str] = (),
        *,
        budget_ms: float = 0.0,
        retry: bool = True,
        roi: Sequence[int] | None = None,
        locate: bool = False,
        full_frame_every: int = 10,
    ) -> None:
        self.decoder = check_decoder(decoder)
        self.locate = locate
        self.full_frame_every = full_frame_every
        self.calls = 0
        """Frames decoded so far (with ``locate``: which ones get the whole-frame passes)."""
        self.formats = format_names(formats)
        self.budget_ms = budget_ms
        self.roi = check_roi(roi or ())
        self.zbar = self._zbar()
        self.passes: list[tuple[str, Pass]] = []
        if decoder != "pyzbar":
            zx = ZxingReader(self.formats)
            self.passes.append(("zxing", lambda g: zx.read(g, invert=g.size <= SMALL_FRAME)))
            self.passes.append(("zxing-inverted", lambda g: _inverted(zx, g)))
            if self.zbar is not None:
                self.passes.append(("pyzbar", self.zbar.read))
            self.region_read = lambda g: zx.read(g, downscale=False, name="zxing-region")
            if retry:
                self.passes += [
                    (
                        "zxing-histogram",
                        lambda g: zx.read(g, histogram=True, name="zxing-histogram"),
                    ),
                    ("zxing-median", lambda g: _median(zx, g)),
                    ("zxing-upscale", lambda g: _upscale(zx, g)),
                ]
        elif self.zbar is not None:
            self.passes.append(("pyzbar", self.zbar.read))

    def _zbar(self) -> PyzbarReader | None:
        """ZBar for the hinted formats it reads, if this decoder uses it and it loads."""
        if self.decoder == "zxing":
            return None
        wanted = [f for f in self.formats if f in ZBAR_SYMBOLS]
        if self.decoder != "pyzbar" and self.formats and not wanted:
            return None  # e.g. DataMatrix alone: nothing for ZBar to add
        if self.decoder == "auto" and not pyzbar_available():
            return None
        return PyzbarReader(wanted if self.decoder != "pyzbar" else self.formats)

    def decode(self, image: Image, *, whole: bool | None = None) -> FrameResult:
        """Decode one frame (BGR or grayscale 8-bit); never raises for a bad frame.

        ``whole`` forces (True) or skips (False) the whole-frame passes of a ``locate``
        decoder; ``None`` follows ``full_frame_every``.  A still image is decoded whole.
        """
        start = time.perf_counter()
        try:
            gray, dx, dy = self._prepare(image)
        except Exception as exc:  # a frame of the wrong shape or type: count it, go on
            return FrameResult((), _ms_since(start), 0, False, (f"frame: {_one_line(exc)}",))
        work = Work(gray, [], [])
        ran = 0
        over = False
        if whole is None:
            whole = not self.locate or (
                self.full_frame_every > 0 and self.calls % self.full_frame_every == 0
            )
        self.calls += 1
        if not whole and self.decoder != "pyzbar":
            ran = self._decode_regions(work)
        for name, run in self.passes if whole else ():
            if name in RETRIES:
                targets = retry_targets(work, self.formats)
                if not targets:
                    break
                if self.budget_ms and _ms_since(start) >= self.budget_ms:
                    over = True
                    break
                ran += 1
                for x, y, cw, ch in targets:
                    crop = gray[y : y + ch, x : x + cw]
                    work.reads += [r.moved(x, y) for r in _guarded(name, run, crop, work.errors)]
                continue
            if name == "zxing-inverted":
                targets = inverted_targets(work)
                ran += bool(targets)
                for x, y, cw, ch in targets:
                    crop = gray[y : y + ch, x : x + cw]
                    work.reads += [r.moved(x, y) for r in _guarded(name, run, crop, work.errors)]
                continue
            if name == "pyzbar" and self.decoder != "pyzbar" and work.reads:
                ran += 1
                self._zbar_where_needed(work)
                continue
            ran += 1
            work.reads += _guarded(name, run, gray, work.errors)
        kept, rejections, _ = merge(work.reads)
        if dx or dy:
            kept = [s.moved(dx, dy) for s in kept]
            rejections = [Rejection(r.symbol.moved(dx, dy), r.rule, r.kept) for r in rejections]
        return FrameResult(
            tuple(kept), _ms_since(start), ran, over, tuple(work.errors), tuple(rejections)
        )

    def _decode_regions(self, work: Work) -> int:
        """zxing-cpp on each symbol-like area only, and ZBar's second opinion on each read
        of a weakly guarded linear format; returns the passes run.  ZBar does not look at
        the other areas here: that costs more than zxing-cpp's reads of them, and the
        whole-frame passes every ``full_frame_every`` frames carry the guarantee."""
        h, w = work.gray.shape[:2]
        done: list[Box] = []
        for area in symbol_like(work, work.textured_areas(), self.formats):
            x, y, cw, ch = clip(grown(area, 0.2, 6), w, h)
            if cw < 8 or ch < 8 or any(overlap((x, y, cw, ch), d) > 0.8 for d in done):
                continue
            done.append((x, y, cw, ch))
            crop = work.gray[y : y + ch, x : x + cw]
            reads = _guarded("zxing-region", self.region_read, crop, work.errors)
            work.reads += [r.moved(x, y) for r in reads]
        if self.zbar is None:
            return 1
        self._zbar_on(work, second_opinion_crops(work))
        return 2

    def _zbar_where_needed(self, work: Work) -> None:
        """ZBar where zxing-cpp's reads leave room for it, not on the whole frame.

        On each textured area no read explains (a code zxing-cpp missed may be
        there), grown by a quiet zone; on the whole frame when those areas cover
        much of it; and on the crop of each read of a format guarded by one check
        digit (EAN/UPC, ITF, ...), for a second opinion.  ZBar reads along scan
        lines, so a symbol with its quiet zone in a crop reads as in the frame.
        """
        assert self.zbar is not None
        crops = zbar_crops(work)
        if crops is None:
            work.reads += _guarded("pyzbar", self.zbar.read, work.gray, work.errors)
            return
        self._zbar_on(work, crops)

    def _zbar_on(self, work: Work, crops: list[Box]) -> None:
        """ZBar on each crop (one of two that nearly coincide), its reads in frame pixels."""
        assert self.zbar is not None
        done: list[Box] = []
        for x, y, cw, ch in crops:
            if not cw or not ch or any(overlap((x, y, cw, ch), d) > 0.9 for d in done):
                continue
            done.append((x, y, cw, ch))
            crop = work.gray[y : y + ch, x : x + cw]
            reads = _guarded("pyzbar", self.zbar.read, crop, work.errors)
            work.reads += [r.moved(x, y) for r in reads]

    def _prepare(self, image: Image) -> tuple[Image, int, int]:
        import cv2
        import numpy as np

        if image.dtype != np.uint8:
            raise TypeError(f"expected 8-bit pixels, got {image.dtype}")
        if image.ndim == 3 and image.shape[2] == 3:
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif image.ndim == 3 and image.shape[2] == 4:
            gray = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
        elif image.ndim == 2:
            gray = image
        else:
            raise TypeError(f"expected a grayscale or BGR image, got shape {image.shape}")
        if self.roi is None:
            return gray, 0, 0
        x, y, w, h = self.roi
        crop = gray[y : y + h, x : x + w]
        if crop.size == 0:
            raise ValueError(
                f"region of interest {list(self.roi)} is outside a {gray.shape[1]}x{gray.shape[0]} frame"
            )
        return np.ascontiguousarray(crop), x, y


def _guarded(name: str, run: Pass, gray: Image, errors: list[str]) -> list[Symbol]:
    """One pass; a library fault on this frame is noted and gives no reads."""
    try:
        return run(gray)
    except Exception as exc:  # library fault on this frame: report, keep going
        errors.append(f"{name}: {_one_line(exc)}")
        return []


def _inverted(zx: ZxingReader, gray: Image) -> list[Symbol]:
    import cv2

    return zx.read(cv2.bitwise_not(gray), name="zxing-inverted", invert=False)


def _median(zx: ZxingReader, gray: Image) -> list[Symbol]:
    import cv2

    return zx.read(cv2.medianBlur(gray, 3), histogram=True, name="zxing-median")


def _upscale(zx: ZxingReader, gray: Image) -> list[Symbol]:
    import cv2

    big = cv2.resize(gray, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
    return [s.moved(k=1 / 1.5) for s in zx.read(big, name="zxing-upscale", downscale=False)]


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())
