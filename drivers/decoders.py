"""Barcode decoders for camera frames, behind one interface.

A :class:`FrameDecoder` reads every code in one image and returns a
:class:`FrameResult`.  It runs a list of *passes* in order, each one call
into a decoding library, and stops at the first pass that finds anything:

* ``zxing`` (the default): zxing-cpp with the configured format hints and
  plain text mode, so a GS1 symbol keeps its GS (0x1D) separators and its AIM
  symbology identifier (``]d2``, ``]C1``, ``]Q3``) says it is GS1.  When the
  first pass finds nothing, cheap retries follow: the inverted image (light
  codes on dark), a global-histogram binarizer, a 3x3 median filter
  (speckle noise, JPEG artefacts) and a 1.5x upscale (thin bars).
* ``pyzbar``: ZBar through pyzbar (no DataMatrix).  ZBar does not say which
  AIM modifier applies, so only EAN/UPC results carry an identifier.
* ``both``: the zxing passes, then pyzbar when they all found nothing.

The passes after the first one stop once ``budget_ms`` is spent, so a frame
with no code in it (the usual case on a conveyor) costs one pass and no more
than the budget.  The libraries are imported lazily: the config can name a
decoder, and ``check-config`` can validate it, without loading them.

Faults: every library call is wrapped, so an exception from a bad frame
becomes an entry in :attr:`FrameResult.errors` and the caller counts it; the
decoder stays usable.  A crash inside the C code (a segfault) cannot be
caught in-process: pyzbar is fed only C-contiguous 8-bit grayscale buffers
with explicit width and height (its known crashes come from strided or
mis-sized arrays), and the agent relies on systemd's ``Restart=`` for the
rest, losing nothing that was committed to the outbox.

Misreads: zxing-cpp can return, beside a good linear read, a second read of
the same symbol from a few scan lines only (the corpus has one: an EAN-13
read as two different numbers).  :func:`drop_thin_conflicts` removes a
linear read that lies along a much better-supported read of the same format
with different text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from scanner_agent.kernel import ConfigError, ScannerAgentError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Image = NDArray[Any]
    """An OpenCV frame: 8-bit grayscale (h, w) or BGR (h, w, 3)."""
else:
    Image = Any

Point = tuple[int, int]
Quad = tuple[Point, Point, Point, Point]
"""Corners of a symbol in frame pixels: top-left, top-right, bottom-right, bottom-left
(as the symbol reads, so a rotated symbol's top-left is not the frame's)."""

DECODERS = ("zxing", "pyzbar", "both")
"""Values of the ``decoder`` option."""

FORMATS = (
    "Aztec",
    "Codabar",
    "Code39",
    "Code93",
    "Code128",
    "DataBar",
    "DataBarExpanded",
    "DataBarLimited",
    "DataMatrix",
    "EAN8",
    "EAN13",
    "ITF",
    "MaxiCode",
    "MicroQRCode",
    "PDF417",
    "QRCode",
    "UPCA",
    "UPCE",
)
"""Format names accepted in ``formats`` (case and ``-``/``_``/spaces do not matter)."""

_ALIASES = {
    "gs1128": "Code128",
    "ean128": "Code128",
    "gs1datamatrix": "DataMatrix",
    "dm": "DataMatrix",
    "qr": "QRCode",
    "gs1qrcode": "QRCode",
    "interleaved2of5": "ITF",
    "i25": "ITF",
    "rss14": "DataBar",
    "rssexpanded": "DataBarExpanded",
}

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

_ZXING_RENAMES = {"DataBarExp": "DataBarExpanded", "DataBarLtd": "DataBarLimited"}

_PYZBAR_SYMBOLS = {
    "Codabar": "CODABAR",
    "Code39": "CODE39",
    "Code93": "CODE93",
    "Code128": "CODE128",
    "DataBar": "DATABAR",
    "DataBarExpanded": "DATABAR_EXP",
    "EAN8": "EAN8",
    "EAN13": "EAN13",
    "ITF": "I25",
    "PDF417": "PDF417",
    "QRCode": "QRCODE",
    "UPCA": "UPCA",
    "UPCE": "UPCE",
}
_PYZBAR_FORMATS = {v: k for k, v in _PYZBAR_SYMBOLS.items()} | {
    "ISBN13": "EAN13",
    "ISBN10": "EAN13",
}
_PYZBAR_AIM = {"EAN13": "]E0", "UPCA": "]E0", "UPCE": "]E0", "EAN8": "]E4"}
"""AIM identifiers we can state for ZBar reads (no modifier to guess for EAN/UPC)."""


class DecoderUnavailable(ScannerAgentError):
    """A configured decoding library cannot be loaded (package or shared library missing)."""


def check_decoder(name: str) -> str:
    """``name`` if it is one of :data:`DECODERS`.

    Raises:
        ConfigError: it is not.
    """
    if name not in DECODERS:
        raise ConfigError(
            f"Failed to parse {name!r} as a decoder: Expected one of {', '.join(DECODERS)}"
        )
    return name


def check_roi(roi: Sequence[Any]) -> tuple[int, int, int, int] | None:
    """A validated region of interest ``(x, y, w, h)``, or ``None`` for an empty list.

    Raises:
        ConfigError: not four integers with x, y >= 0 and w, h > 0.
    """
    if not roi:
        return None
    if (
        len(roi) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in roi)
        or min(roi[0], roi[1]) < 0
        or min(roi[2], roi[3]) <= 0
    ):
        raise ConfigError(
            f"Failed to parse {list(roi)!r} as a region: Expected [x, y, w, h] "
            f"with x, y >= 0 and w, h > 0"
        )
    x, y, w, h = roi
    return x, y, w, h


def format_name(name: str) -> str:
    """The canonical name for a format as written in config (``gs1-128`` -> ``Code128``).

    Raises:
        ConfigError: the name is not a known format.
    """
    key = "".join(ch for ch in name.lower() if ch not in "-_ ")
    for canonical in FORMATS:
        if canonical.lower() == key:
            return canonical
    if key in _ALIASES:
        return _ALIASES[key]
    raise ConfigError(
        f"Failed to parse {name!r} as a barcode format: Expected one of {', '.join(FORMATS)}"
    )


def format_names(names: Iterable[str]) -> tuple[str, ...]:
    """Canonical names for a ``formats`` list, duplicates removed, order kept."""
    return tuple(dict.fromkeys(format_name(n) for n in names))


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
    """Canonical format name (see :data:`FORMATS`)."""
    position: Quad
    """Corners in frame pixels (the region of interest already added back)."""
    decoder: str
    """The pass that read it: ``zxing``, ``zxing-inverted``, ..., ``pyzbar``."""

    @property
    def scan(self) -> bytes:
        """What a handheld scanner would send: identifier then payload (for the parser)."""
        return self.symbology.encode("ascii", "replace") + self.payload


@dataclass(frozen=True, slots=True)
class FrameResult:
    """What decoding one frame gave."""

    symbols: tuple[Symbol, ...]
    elapsed_ms: float
    """Time spent in this call, all passes included."""
    passes: int
    """Passes run (1 when the first found something or the budget was spent)."""
    over_budget: bool
    """Later passes were skipped because ``budget_ms`` was spent."""
    errors: tuple[str, ...] = ()
    """Library faults caught while decoding this frame, one line each."""


Pass = Callable[["Image"], list[Symbol]]


def load_zxing() -> ModuleType:
    """Import zxing-cpp.

    Raises:
        DecoderUnavailable: the package is not installed.
    """
    try:
        import zxingcpp
    except ImportError as exc:
        raise DecoderUnavailable(
            f"Failed to load 'zxing-cpp' as a decoder: Expected the zxing-cpp package "
            f"(pip install zxing-cpp), got {exc}"
        ) from exc
    return zxingcpp


def load_pyzbar() -> ModuleType:
    """Import pyzbar, which loads libzbar at import time.

    Raises:
        DecoderUnavailable: pyzbar or the libzbar shared library is missing.
    """
    try:
        from pyzbar import pyzbar as module
    except (ImportError, OSError) as exc:
        raise DecoderUnavailable(
            f"Failed to load 'pyzbar' as a decoder: Expected the pyzbar package and the "
            f"libzbar0 Debian package (apt-get install libzbar0), got {exc}"
        ) from exc
    pyzbar: ModuleType = module
    return pyzbar


def pyzbar_available() -> bool:
    """Whether the pyzbar decoder can be used here (package and libzbar present)."""
    try:
        load_pyzbar()
    except DecoderUnavailable:
        return False
    return True


# -- zxing-cpp -------------------------------------------------------------------


class _Zxing:
    """zxing-cpp passes sharing one set of format hints."""

    def __init__(self, formats: Sequence[str]) -> None:
        self.zx = load_zxing()
        zx = self.zx
        self.formats = (
            zx.BarcodeFormats([zx.barcode_format_from_str(f) for f in formats])
            if formats
            else zx.BarcodeFormats(zx.BarcodeFormat.All)
        )

    def read(self, gray: Image, *, binarizer: Any = None, name: str = "zxing") -> list[Symbol]:
        zx = self.zx
        barcodes = zx.read_barcodes(
            gray,
            formats=self.formats,
            try_rotate=True,
            try_downscale=True,
            try_invert=False,
            text_mode=zx.TextMode.Plain,
            binarizer=binarizer if binarizer is not None else zx.Binarizer.LocalAverage,
        )
        out = []
        for b in barcodes:
            if not b.valid:
                continue
            fmt = _ZXING_RENAMES.get(b.format.name, b.format.name)
            p = b.position
            quad = (
                (p.top_left.x, p.top_left.y),
                (p.top_right.x, p.top_right.y),
                (p.bottom_right.x, p.bottom_right.y),
                (p.bottom_left.x, p.bottom_left.y),
            )
            text: str = b.text
            payload: bytes = text.encode("utf-8") if text else bytes(b.bytes)
            out.append(Symbol(text, payload, b.symbology_identifier, fmt, quad, name))
        return drop_thin_conflicts(out)

    def first(self, gray: Image) -> list[Symbol]:
        return self.read(gray)

    def inverted(self, gray: Image) -> list[Symbol]:
        import cv2

        return self.read(cv2.bitwise_not(gray), name="zxing-inverted")

    def histogram(self, gray: Image) -> list[Symbol]:
        return self.read(gray, binarizer=self.zx.Binarizer.GlobalHistogram, name="zxing-histogram")

    def median(self, gray: Image) -> list[Symbol]:
        import cv2

        return self.read(
            cv2.medianBlur(gray, 3),
            binarizer=self.zx.Binarizer.GlobalHistogram,
            name="zxing-median",
        )

    def upscale(self, gray: Image) -> list[Symbol]:
        import cv2

        big = cv2.resize(gray, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
        return [_scaled(s, 1 / 1.5) for s in self.read(big, name="zxing-upscale")]


# -- pyzbar ------------------------------------------------------------------------


class _Pyzbar:
    def __init__(self, formats: Sequence[str]) -> None:
        self.pz = load_pyzbar()
        wanted = [_PYZBAR_SYMBOLS[f] for f in formats if f in _PYZBAR_SYMBOLS]
        if formats and not wanted:
            raise ConfigError(
                f"Failed to use {', '.join(formats)} with pyzbar: Expected one of "
                f"{', '.join(sorted(_PYZBAR_SYMBOLS))} (ZBar reads no DataMatrix)"
            )
        self.symbols = [self.pz.ZBarSymbol[s] for s in wanted] if wanted else None

    def read(self, gray: Image) -> list[Symbol]:
        import numpy as np

        # A C-contiguous 8-bit buffer with explicit size: what libzbar expects, nothing strided.
        buf = np.ascontiguousarray(gray, dtype=np.uint8)
        height, width = buf.shape[:2]
        out = []
        for d in self.pz.decode((buf.tobytes(), width, height), symbols=self.symbols):
            kind = str(d.type)
            fmt = _PYZBAR_FORMATS.get(kind, kind)
            data = bytes(d.data)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
            left, top, w, h = (int(v) for v in d.rect)
            quad = ((left, top), (left + w, top), (left + w, top + h), (left, top + h))
            out.append(Symbol(text, data, _PYZBAR_AIM.get(fmt, ""), fmt, quad, "pyzbar"))
        return out


# -- the frame decoder -------------------------------------------------------------


class FrameDecoder:
    """Reads every code in a frame with the configured library and passes.

    Args:
        decoder: ``zxing``, ``pyzbar`` or ``both``.
        formats: canonical format names to look for; empty means every format the
            library reads (slower: format hints speed zxing-cpp up several times).
        budget_ms: after this many milliseconds no further pass starts (0: no limit).
            The first pass always runs.
        retry: run the retry passes when the first finds nothing.
        roi: ``(x, y, w, h)`` region of the frame to decode, or ``None`` for all of it.

    Raises:
        ConfigError: unknown decoder or format, a bad region, or formats pyzbar cannot read.
        DecoderUnavailable: the library is not installed.
    """

    def __init__(
        self,
        decoder: str = "zxing",
        formats: Sequence[str] = (),
        *,
        budget_ms: float = 0.0,
        retry: bool = True,
        roi: Sequence[int] | None = None,
    ) -> None:
        self.decoder = check_decoder(decoder)
        self.formats = format_names(formats)
        self.budget_ms = budget_ms
        self.roi = check_roi(roi or ())
        self.passes: list[tuple[str, Pass]] = []
        if decoder in ("zxing", "both"):
            zx = _Zxing(self.formats)
            self.passes.append(("zxing", zx.first))
            if retry:
                self.passes += [
                    ("zxing-inverted", zx.inverted),
                    ("zxing-histogram", zx.histogram),
                    ("zxing-median", zx.median),
                    ("zxing-upscale", zx.upscale),
                ]
        if decoder in ("pyzbar", "both"):
            # With "both", ZBar reads only the formats it knows; DataMatrix stays zxing's.
            pz_formats = (
                [f for f in self.formats if f in _PYZBAR_SYMBOLS]
                if decoder == "both"
                else self.formats
            )
            if decoder == "pyzbar" or not self.formats or pz_formats:
                self.passes.append(("pyzbar", _Pyzbar(pz_formats).read))

    def decode(self, image: Image) -> FrameResult:
        """Decode one frame (BGR or grayscale 8-bit); never raises for a bad frame."""
        start = time.perf_counter()
        errors: list[str] = []
        try:
            gray, dx, dy = self._prepare(image)
        except Exception as exc:  # a frame of the wrong shape or type: count it, go on
            return FrameResult((), _ms_since(start), 0, False, (f"frame: {_one_line(exc)}",))
        symbols: list[Symbol] = []
        ran = 0
        over = False
        for name, run in self.passes:
            if ran and (symbols or (self.budget_ms and _ms_since(start) >= self.budget_ms)):
                over = not symbols
                break
            ran += 1
            try:
                symbols = run(gray)
            except Exception as exc:  # library fault on this frame: report, keep going
                errors.append(f"{name}: {_one_line(exc)}")
        if dx or dy:
            symbols = [_shifted(s, dx, dy) for s in symbols]
        return FrameResult(tuple(symbols), _ms_since(start), ran, over, tuple(errors))

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


def drop_thin_conflicts(symbols: list[Symbol]) -> list[Symbol]:
    """Remove linear reads that contradict a much better-supported read of the same symbol.

    Two reads conflict when they have the same linear format, different text,
    the same direction (within 10 degrees) and overlap by most of their length
    along it.  The one whose extent across the bars is less than a quarter of
    the other's came from a few scan lines and is dropped.  Stacked labels with
    several real codes keep them all: each is read across its own bar height.
    """
    linear = [s for s in symbols if s.format in LINEAR]
    if len(linear) < 2:
        return symbols
    dropped: set[int] = set()
    for a in linear:
        for b in linear:
            if a is b or a.format != b.format or a.text == b.text:
                continue
            if _thickness(a) < 0.25 * _thickness(b) and _same_line(a, b):
                dropped.add(id(a))
    return [s for s in symbols if id(s) not in dropped]


def _thickness(s: Symbol) -> float:
    (x0, y0), _, _, (x3, y3) = s.position
    return math.hypot(x3 - x0, y3 - y0)


def _same_line(a: Symbol, b: Symbol) -> bool:
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
    a_lo, a_hi = sorted((0.0, la))
    b_lo, b_hi = sorted(((bx0 - ax0) * ux + (by0 - ay0) * uy, (bx1 - ax0) * ux + (by1 - ay0) * uy))
    overlap = min(a_hi, b_hi) - max(a_lo, b_lo)
    return overlap > 0.8 * min(la, lb)


def _shifted(s: Symbol, dx: int, dy: int) -> Symbol:
    quad = tuple((x + dx, y + dy) for x, y in s.position)
    return Symbol(s.text, s.payload, s.symbology, s.format, quad, s.decoder)  # type: ignore[arg-type]


def _scaled(s: Symbol, k: float) -> Symbol:
    quad = tuple((round(x * k), round(y * k)) for x, y in s.position)
    return Symbol(s.text, s.payload, s.symbology, s.format, quad, s.decoder)  # type: ignore[arg-type]


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())
