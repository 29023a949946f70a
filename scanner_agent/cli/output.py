"""What the command line prints and the status it exits with, for every command alike.

Each ``scanner-agent`` command reports in two forms, and this module holds the
rules of both so no command invents its own:

* **For programs**, ``--json`` (:func:`json_flag`): one JSON object on one line
  for a report (:func:`print_json`), one object per line (JSON Lines) for a
  list of things (:func:`print_json_lines`), so ``jq`` and a ``for line in``
  loop both work and a long list streams.  Times are ISO 8601 with an offset
  (:func:`scanner_agent.times.iso`); stdout holds only the JSON, and notes
  (rows left out, nothing found) go to stderr.
* **For people**, tables with headers (:func:`print_table`), cells rendered by
  :func:`cell` (never a Python ``repr``: a dict is ``key value, ...``, a list
  is ``a, b``, ``None`` is ``-``), times in the local zone with the zone shown
  (:func:`scanner_agent.times.local`), counted nouns that agree with their
  number (:func:`plural`), and a line that says so when there is nothing to
  list (:func:`print_table`'s ``empty``).

The exit status (:data:`EXIT_CODES`, documented in ``--help`` and the README):
0 success, 1 the operation failed, 2 a usage or configuration error, 3 the
command ran but found problems (an invalid code, a file with no code, a failed
check, damaged rows, empty required fields).  :func:`exit_code` maps an error to 1 or 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TextIO

from scanner_agent.kernel import ConfigError, ScannerAgentError, UsageError, plural
from scanner_agent.times import iso

__all__ = [
    "EPILOG",
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_PROBLEMS",
    "EXIT_USAGE",
    "add_command",
    "cell",
    "cell_width",
    "exit_code",
    "json_flag",
    "note",
    "plural",
    "print_fields",
    "print_json",
    "print_json_lines",
    "print_table",
    "table",
    "whole_number",
]

EXIT_OK: Final = 0
"""The command did what was asked (a list may be empty)."""
EXIT_FAILED: Final = 1
"""The operation failed: the agent did not answer, the file could not be read, a bill
was not found, the outbox refused, the demo's verdict is FAILED or INCOMPLETE."""
EXIT_USAGE: Final = 2
"""A usage or configuration error: a bad argument, a missing file named on the command
line, an invalid config (argparse's own errors exit 2 too)."""
EXIT_PROBLEMS: Final = 3
"""The command ran and found problems: ``parse`` of an invalid code, ``decode`` of a file
that gave no code, ``doctor`` with a failed check, ``queue export``/``salvage`` with
damaged rows, ``profiles validate`` with an invalid profile, ``udev-rules --check`` out of
date, ``bill export --strict`` with required fields empty."""

EXIT_CODES: Final[dict[int, str]] = {
    EXIT_OK: "success",
    EXIT_FAILED: "the operation failed (the agent or a file could not do what was asked)",
    EXIT_USAGE: "usage or configuration error",
    EXIT_PROBLEMS: "ran, but found problems (an invalid code, a failed check, damaged rows, "
    "required fields empty)",
    130: "interrupted (Ctrl-C)",
}
"""Every exit status a command can return, and what it means."""

EPILOG: Final = "exit status:\n" + "\n".join(
    f"  {code:<3} {meaning}" for code, meaning in EXIT_CODES.items()
)
"""The ``--help`` epilog listing :data:`EXIT_CODES` (use with ``RawDescriptionHelpFormatter``)."""


def add_command(
    subparsers: Any, name: str, help_text: str, *, description: str | None = None
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with the exit statuses (:data:`EPILOG`)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def whole_number(text: str) -> int:
    """An argparse ``type`` for a count such as ``--limit``: a whole number, zero or more."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {n}")
    return n


def exit_code(exc: ScannerAgentError) -> int:
    """:data:`EXIT_USAGE` for a usage or configuration error, else :data:`EXIT_FAILED`.

    A usage error is a :class:`ConfigError`, a :class:`UsageError`, or an error
    whose ``code`` is ``bad_request`` (a bill command refused for its arguments,
    locally or by the agent); anything else means the operation itself failed.
    """
    if isinstance(exc, ConfigError | UsageError) or getattr(exc, "code", None) == "bad_request":
        return EXIT_USAGE
    return EXIT_FAILED


# -- JSON ---------------------------------------------------------------------------


def json_flag(parser: argparse.ArgumentParser, help_text: str = "print JSON") -> None:
    """Add ``--json`` to a command's parser (every command that reports anything has it)."""
    parser.add_argument("--json", action="store_true", help=help_text)


def _plain(value: Any) -> Any:
    """``json.dumps``'s fallback: times as ISO 8601, paths and enums as their text."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def print_json(obj: Any, *, file: TextIO | None = None) -> None:
    """One JSON value on one line (UTF-8 text as is, not ``\\u`` escapes)."""
    out = file or sys.stdout
    out.write(json.dumps(obj, ensure_ascii=False, default=_plain) + "\n")


def print_json_lines(objs: Iterable[Any]) -> None:
    """A list as JSON Lines: one value per line, nothing at all for an empty list."""
    for obj in objs:
        print_json(obj)


def note(text: str) -> None:
    """A line for the person at the terminal that is not the command's output (stderr)."""
    print(text, file=sys.stderr)


# -- text for people ----------------------------------------------------------------------


def cell(value: Any) -> str:
    """A value as people read it, never as a Python ``repr``.

    ``None`` and ``""`` are ``-``; a bool is ``yes``/``no``; a list is
    ``a, b``; a mapping is ``key value, key value``; a datetime is ISO 8601
    (callers that know a field is a time show it with
    :func:`scanner_agent.times.local`); bytes are hex.
    """
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, enum.Enum):
        return cell(value.value)
    if isinstance(value, datetime):
        return iso(value) or "-"
    if isinstance(value, bytes):
        return value.hex(" ") or "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(cell(v) for v in value) or "-"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return cell(dataclasses.asdict(value))
    return str(value)


def cell_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: 2 for a wide (CJK) character, 0 for a combining one."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _pad(text: str, width: int, *, right: bool) -> str:
    gap = " " * max(0, width - cell_width(text))
    return gap + text if right else text + gap


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Lines of a table: an upper-case header, then the rows, in aligned columns.

    Cells go through :func:`cell`; columns whose values are all numbers are
    right-aligned; the last column is not padded (so lines carry no trailing
    blanks).  Columns are two spaces apart, as ``ps`` and ``lsblk`` print them.
    """
    values = [list(row) for row in rows]
    body = [[cell(v) for v in row] for row in values]
    numeric = [
        bool(values)
        and all(isinstance(row[i], int | float) and not isinstance(row[i], bool) for row in values)
        for i in range(len(headers))
    ]
    head = [h.upper() for h in headers]
    widths = [
        max([cell_width(head[i]), *(cell_width(r[i]) for r in body)]) for i in range(len(headers))
    ]
    last = len(headers) - 1
    lines = []
    for row in [head, *body]:
        parts = [
            _pad(text, widths[i], right=numeric[i]) if i < last or numeric[i] else text
            for i, text in enumerate(row)
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


def print_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """``name  value`` lines with the values in one column (a report of one thing, like ``status``)."""
    rows = [(name, cell(value)) for name, value in pairs]
    width = max((cell_width(name) for name, _ in rows), default=0)
    for name, value in rows:
        print(f"{_pad(name, width, right=False)}  {value}".rstrip())


def print_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    empty: str,
) -> int:
    """Print :func:`table` of ``rows``, or the line ``empty`` (e.g. ``no bills``) when there are none.

    Returns the number of rows printed.
    """
    rows = list(rows)
    if not rows:
        print(empty)
        return 0
    for line in table(headers, rows):
        print(line)
    return len(rows)
