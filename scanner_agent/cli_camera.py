"""``scanner-agent decode``: read the codes in images, videos and folders, as JSON lines.

One line per code read, with the parse result nested in it::

    {"file": "pack.png", "frame": 0, "text": "0106901234567892\\x1d21ABC", "symbology": "]d2",
     "format": "DataMatrix", "position": [[10, 10], [90, 10], [90, 90], [10, 90]],
     "decoder": "zxing", "parse": {"scheme": "gs1", "valid": true, ...}}

``text`` has control characters escaped as ``\\xNN`` (GS is ``\\x1d``) and a
backslash doubled, so a line shows exactly what the symbol holds (a binary
symbol with no text also gets ``hex``, its bytes in hexadecimal); ``parse``
is :func:`scanner_agent.codes.parse_scan` of the identifier and payload, as
``scanner-agent parse`` prints it.  The exit status is 0 even when nothing
was read; a path that cannot be opened is an error (status 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from scanner_agent.errors import ConfigError

if TYPE_CHECKING:
    from scanner_agent.cli import AddCommand


def escape_text(text: str) -> str:
    r"""Control characters as ``\xNN``, a backslash as ``\\``; everything else as is.

    >>> escape_text("0106901234567892\x1d21ABC")
    '0106901234567892\\x1d21ABC'
    """
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def _split_ints(value: str) -> list[int]:
    try:
        return [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError as exc:
        raise ConfigError(f"Failed to parse {value!r} as x,y,w,h: {exc}") from exc


def cmd_decode(args: argparse.Namespace) -> int:
    """Print one JSON line per code read in the given files."""
    from drivers.camera import decode_paths
    from drivers.decoders import FrameDecoder
    from scanner_agent.codes import parse_scan

    formats = [f for f in (args.formats or "").split(",") if f.strip()]
    decoder = FrameDecoder(
        args.decoder,
        [f.strip() for f in formats],
        budget_ms=args.budget_ms,
        roi=_split_ints(args.roi) if args.roi else None,
    )
    for read in decode_paths(args.paths, decoder, unique=args.unique):
        s = read.symbol
        line: dict[str, Any] = {
            "file": read.file,
            "frame": read.frame,
            "text": escape_text(s.text),
            "symbology": s.symbology,
            "format": s.format,
            "position": [list(p) for p in s.position],
            "decoder": s.decoder,
        }
        if not s.text and s.payload:
            line["hex"] = s.payload.hex()  # a binary symbol: its bytes, as no text shows them
        line["parse"] = parse_scan(s.scan).to_dict()
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0


def register(add: AddCommand) -> None:
    """Add the ``decode`` command."""
    p = add(
        "decode",
        cmd_decode,
        "Read every code in images, videos or image folders; print JSON lines with the parse.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image, video file or folder of images")
    p.add_argument(
        "--decoder",
        choices=["zxing", "pyzbar", "both"],
        default="zxing",
        help="decoding library (default zxing: zxing-cpp; both: pyzbar when zxing reads nothing)",
    )
    p.add_argument(
        "--formats",
        metavar="LIST",
        help="comma-separated symbologies, e.g. DataMatrix,Code128 (default: all; hints are faster)",
    )
    p.add_argument("--roi", metavar="X,Y,W,H", help="decode only this region of each frame")
    p.add_argument(
        "--budget-ms",
        type=float,
        default=0.0,
        help="no retry pass starts after this much time on a frame (default 0: no limit)",
    )
    p.add_argument("--unique", action="store_true", help="report each text once per file (videos)")
