"""``scanner-agent parse``: one JSON object per code, from the arguments or stdin lines."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence

from scanner_agent.cli._common import AddCommand
from scanner_agent.cli.output import EXIT_OK, EXIT_PROBLEMS, json_flag, print_json


def _inputs(codes: Sequence[str]) -> Iterable[bytes]:
    if codes:
        for c in codes:
            yield c.encode("utf-8", "surrogateescape")
        return
    yield from sys.stdin.buffer


def cmd_parse(args: argparse.Namespace) -> int:
    """Print one JSON object per input code; exit 3 when any of them is not a valid code."""
    from scanner_agent.codes import parse_scan

    invalid = 0
    for data in _inputs(args.codes):
        if not data.strip(b"\r\n"):
            continue
        result = parse_scan(data)
        invalid += not result.valid
        print_json(result.to_dict())
    return EXIT_PROBLEMS if invalid else EXIT_OK


def register(add: AddCommand) -> None:
    """Add ``parse``."""
    p = add(
        "parse",
        cmd_parse,
        "Parse codes (arguments or stdin lines) and print one JSON object per code; "
        "exit 3 when any code is invalid.",
    )
    p.add_argument("codes", nargs="*", help="codes to parse; read lines from stdin when none")
    json_flag(p, "print JSON (the default: parse always prints one JSON object per code)")
