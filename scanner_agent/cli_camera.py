"""``scanner-agent decode``: read the codes in images, videos and folders, as JSON lines.

One line per code read, with the parse result nested in it::

    {"file": "pack.png", "frame": 0, "text": "0106901234567892\\x1d21ABC", "symbology": "]d2",
     "format": "DataMatrix", "position": [[10, 10], [90, 10], [90, 90], [10, 90]],
     "decoder": "zxing", "parse": {"scheme": "gs1", "valid": true, ...}}

``text`` has control characters escaped as ``\\xNN`` (GS is ``\\x1d``) and a
backslash doubled, so a line shows exactly what the symbol holds (a binary
symbol with no text also gets ``hex``, its bytes in hexadecimal); ``parse``
is :func:`scanner_agent.codes.parse_scan` of the identifier and payload, as
``scanner-agent parse`` prints it.

Folders are read with their subfolders (``--no-recursive``: the folder alone).
A file with no code gets a line on stderr, and the run ends with a summary
there (files, codes, files with none), so a run that read nothing never
passes silently, and its exit status is 3 (ran, but found problems), as
``zbarimg`` exits non-zero when an image holds no barcode: a script checking
a set-up or a batch of photos sees it without reading stderr, while every
code that was read is still printed.  A path that cannot be opened is a
usage error (status 2).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from scanner_agent.cli_output import EXIT_OK, EXIT_PROBLEMS, json_flag, note, plural, print_json
from scanner_agent.kernel import ConfigError, DeviceUnavailable, UsageError

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
    """Print one JSON line per code read in the given files; 3 when a file gave none."""
    from drivers.camera import FileDone, decode_paths
    from drivers.decoders import FrameDecoder
    from scanner_agent.codes import parse_scan

    formats = [f for f in (args.formats or "").split(",") if f.strip()]
    decoder = FrameDecoder(
        args.decoder,
        [f.strip() for f in formats],
        budget_ms=args.budget_ms,
        roi=_split_ints(args.roi) if args.roi else None,
    )
    files = codes = 0
    empty: list[str] = []
    reads = decode_paths(args.paths, decoder, unique=args.unique, recursive=args.recursive)
    while True:
        try:
            read = next(reads)
        except StopIteration:
            break
        except DeviceUnavailable as exc:  # a path on the command line that cannot be opened
            raise UsageError(str(exc)) from exc
        if isinstance(read, FileDone):
            files += 1
            codes += read.codes
            if not read.codes:
                empty.append(read.file)
                what = plural(read.frames, "frame") if read.frames else "no image read"
                note(f"{read.file}: no code found ({what})")
            continue
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
        print_json(line)
    sys.stdout.flush()
    note(
        f"decoded {plural(files, 'file')}: {plural(codes, 'code')}"
        + (f"; {plural(len(empty), 'file')} with no code" if empty else "")
    )
    return EXIT_PROBLEMS if empty else EXIT_OK


def register(add: AddCommand) -> None:
    """Add the ``decode`` command."""
    p = add(
        "decode",
        cmd_decode,
        "Read every code in images, videos or image folders (with subfolders); print JSON "
        "lines with the parse; files with no code are named on stderr (exit status 3).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image, video file or folder of images")
    p.add_argument(
        "--recursive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="read the images in a folder's subfolders too (default; --no-recursive: "
        "the folder alone)",
    )
    json_flag(p, "print JSON Lines (the default: one JSON object per code)")
    p.add_argument(
        "--decoder",
        choices=["auto", "zxing", "pyzbar", "both"],
        default="auto",
        help="decoding library (default auto: zxing-cpp and, where installed, ZBar, never fewer "
        "codes than either; both: auto that needs ZBar)",
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
