"""One call into a decoding library, as :class:`~drivers.symbols.Symbol` objects.

:class:`ZxingReader` wraps zxing-cpp, :class:`PyzbarReader` wraps ZBar through
pyzbar.  Both take an 8-bit grayscale image; neither keeps state between calls.
The libraries are imported when a reader is made, never at module import, so the
config can name a decoder without loading them.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from drivers.symbols import Symbol
from scanner_agent.kernel import ConfigError, ScannerAgentError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Image = NDArray[Any]
else:
    Image = Any

_ZXING_RENAMES = {"DataBarExp": "DataBarExpanded", "DataBarLtd": "DataBarLimited"}

ZBAR_SYMBOLS = {
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
"""Our format names -> ZBar's, for the formats ZBar reads (no DataMatrix)."""
_ZBAR_FORMATS = {v: k for k, v in ZBAR_SYMBOLS.items()} | {"ISBN13": "EAN13", "ISBN10": "EAN13"}
_ZBAR_AIM = {"EAN13": "]E0", "UPCA": "]E0", "UPCE": "]E0", "EAN8": "]E4"}
"""AIM identifiers we can state for ZBar reads (no modifier to guess for EAN/UPC)."""


class DecoderUnavailable(ScannerAgentError):
    """A configured decoding library cannot be loaded (package or shared library missing)."""


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


class ZxingReader:
    """zxing-cpp with one set of format hints.

    ``read`` with no options is zxing-cpp's defaults (every orientation, inverted
    symbols, downscaled copies, the local-average binarizer) in plain text mode, so
    a GS1 symbol keeps its GS separators and its AIM identifier says it is GS1.
    """

    def __init__(self, formats: Sequence[str]) -> None:
        self.zx = load_zxing()
        zx = self.zx
        self.formats = (
            zx.BarcodeFormats([zx.barcode_format_from_str(f) for f in formats])
            if formats
            else zx.BarcodeFormats(zx.BarcodeFormat.All)
        )

    def read(
        self,
        gray: Image,
        *,
        name: str = "zxing",
        histogram: bool = False,
        downscale: bool = True,
        invert: bool = True,
        formats: Any = None,
    ) -> list[Symbol]:
        zx = self.zx
        barcodes = zx.read_barcodes(
            gray,
            formats=self.formats if formats is None else formats,
            try_rotate=True,
            try_downscale=downscale,
            try_invert=invert,
            text_mode=zx.TextMode.Plain,
            binarizer=zx.Binarizer.GlobalHistogram if histogram else zx.Binarizer.LocalAverage,
        )
        out = []
        for b in barcodes:
            if not b.valid:
                continue
            p = b.position
            quad = (
                (p.top_left.x, p.top_left.y),
                (p.top_right.x, p.top_right.y),
                (p.bottom_right.x, p.bottom_right.y),
                (p.bottom_left.x, p.bottom_left.y),
            )
            text: str = b.text
            raw = bytes(b.bytes)
            payload = text.encode("utf-8") if text else raw
            fmt = _ZXING_RENAMES.get(b.format.name, b.format.name)
            out.append(Symbol(text, payload, b.symbology_identifier, fmt, quad, name, raw))
        return out


class PyzbarReader:
    """ZBar through pyzbar, for the formats it reads.

    Raises:
        ConfigError: ``formats`` names only formats ZBar cannot read.
        DecoderUnavailable: pyzbar or libzbar is missing.
    """

    def __init__(self, formats: Sequence[str]) -> None:
        wanted = [ZBAR_SYMBOLS[f] for f in formats if f in ZBAR_SYMBOLS]
        if formats and not wanted:
            raise ConfigError(
                f"Failed to use {', '.join(formats)} with pyzbar: Expected one of "
                f"{', '.join(sorted(ZBAR_SYMBOLS))} (ZBar reads no DataMatrix)"
            )
        self.pz = load_pyzbar()
        self.symbols = [self.pz.ZBarSymbol[s] for s in wanted] if wanted else None

    def read(self, gray: Image, *, name: str = "pyzbar") -> list[Symbol]:
        import numpy as np

        # A C-contiguous 8-bit buffer with explicit size: what libzbar expects, nothing strided.
        buf = np.ascontiguousarray(gray, dtype=np.uint8)
        height, width = buf.shape[:2]
        out = []
        for d in self.pz.decode((buf.tobytes(), width, height), symbols=self.symbols):
            kind = str(d.type)
            fmt = _ZBAR_FORMATS.get(kind, kind)
            data = bytes(d.data)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
            quad = _zbar_quad(d.rect, str(d.orientation))
            lines = int(d.quality)
            out.append(Symbol(text, data, _ZBAR_AIM.get(fmt, ""), fmt, quad, name, lines=lines))
        return out


def _zbar_quad(rect: Any, orientation: str) -> Any:
    """Corners in reading order for a ZBar read: its upright rectangle, turned so that
    top-left -> top-right is the reading direction, as the misread rules expect."""
    left, top, w, h = (int(v) for v in rect)
    quad = ((left, top), (left + w, top), (left + w, top + h), (left, top + h))
    if orientation in ("RIGHT", "LEFT"):  # read top to bottom: rotate the corners
        quad = ((left + w, top), (left + w, top + h), (left, top + h), (left, top))
    return quad
