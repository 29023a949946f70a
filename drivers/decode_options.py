"""The camera decoder's options, as the config writes them: which decoder, which formats,
which region of the frame.

Its own module, free of the decoding libraries and of numpy, so that the source registry
and ``check-config`` can check a camera's options without loading anything
(:mod:`drivers.decoders` re-exports these names).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from scanner_agent.kernel import ConfigError

DECODERS = ("auto", "zxing", "pyzbar", "both")
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
