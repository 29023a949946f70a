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

It runs the camera source's pipeline (:func:`drivers.camera.frame_decoder`) with
the camera source's settings: the defaults of a ``[[source]] type = "camera"``,
or those of a configured one (``--source NAME``), then the flags given, so a
still checked here reads as it will on the line.

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
from pathlib import Path
from typing import Any

from scanner_agent.cli._common import AddCommand
from scanner_agent.cli.output import EXIT_OK, EXIT_PROBLEMS, json_flag, note, plural, print_json
from scanner_agent.kernel import ConfigError, DeviceUnavailable, UsageError


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


def decode_options(args: argparse.Namespace) -> dict[str, Any]:
    """The camera options ``decode`` runs with: a configured camera source's (``--source``)
    or the camera defaults, then the flags given, checked as the config checks them."""
    from drivers.registry import resolve_options

    given: dict[str, Any] = {}
    if args.source:
        from scanner_agent.config import DEFAULT_CONFIG_PATH, load_config

        cfg = load_config(Path(args.config) if args.config else DEFAULT_CONFIG_PATH)
        try:
            given.update(cfg.find_source("camera", args.source).options)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    given["device"] = "-"  # the paths on the command line take its place
    if args.decoder is not None:
        given["decoder"] = args.decoder
    if args.formats is not None:
        formats = [f.strip() for f in args.formats.split(",") if f.strip()]
        given["formats"] = [] if formats == ["all"] else formats
    if args.roi is not None:
        given["roi"] = _split_ints(args.roi)
    if args.budget_ms is not None:
        given["frame_budget_ms"] = args.budget_ms
    if args.locate is not None:
        given["locate"] = args.locate
    return resolve_options("camera", given, "decode")


def cmd_decode(args: argparse.Namespace) -> int:
    """Print one JSON line per code read in the given files; 3 when a file gave none."""
    from drivers.camera import FileDone, decode_paths, frame_decoder
    from scanner_agent.codes import parse_scan

    decoder = frame_decoder(decode_options(args))
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
        "--source",
        metavar="NAME",
        help="decode with the settings of this camera source of the config (its name or device)",
    )
    p.add_argument("--config", "-c", help="config file for --source (default: the agent's)")
    p.add_argument(
        "--decoder",
        choices=["auto", "zxing", "pyzbar", "both"],
        help="decoding library (default auto: zxing-cpp and, where installed, ZBar, never fewer "
        "codes than either; both: auto that needs ZBar)",
    )
    p.add_argument(
        "--formats",
        metavar="LIST",
        help="comma-separated symbologies, e.g. DataMatrix,Code128, or 'all' (default: a camera "
        "source's, Code128,DataMatrix,QRCode)",
    )
    p.add_argument("--roi", metavar="X,Y,W,H", help="decode only this region of each frame")
    p.add_argument(
        "--budget-ms",
        type=float,
        help="no retry pass starts after this much time on a frame (default: a camera "
        "source's 50; 0: no limit)",
    )
    p.add_argument(
        "--locate",
        action=argparse.BooleanOptionalAction,
        help="video frames after the first: decode only the areas that look like symbols, the "
        "whole frame every full_frame_every frames, as a camera source does (default on); "
        "an image and a video's first frame are always decoded whole",
    )
    p.add_argument("--unique", action="store_true", help="report each text once per file (videos)")
