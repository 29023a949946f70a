"""``scanner-agent``: one console script, a subcommand per job.

The CLI is thin (sqlite-utils' rule): each command parses its arguments,
calls one library function and prints the result through
:mod:`scanner_agent.cli.output` (tables for people, ``--json`` for programs);
a :class:`ScannerAgentError` becomes a message on stderr and the documented
exit status (:data:`~scanner_agent.cli.output.EXIT_CODES`), so piped JSON
output is never mixed with errors.

This module builds the parser from the command modules (:data:`COMMANDS`,
each with a ``register(add)``) and runs the chosen command (both with
:mod:`._dispatch`, which ``python -m scanner_agent.cli.ops`` uses alone); it
holds no command itself.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from scanner_agent import __version__
from scanner_agent.cli._common import AddCommand, Handler
from scanner_agent.cli._dispatch import parser_for, run, with_commands
from scanner_agent.cli.output import EPILOG

__all__ = ["COMMANDS", "AddCommand", "Handler", "build_parser", "main", "parser_for", "run"]

COMMANDS: tuple[str, ...] = (
    "scanner_agent.cli.parse",
    "scanner_agent.cli.run",
    "scanner_agent.cli.lab",
    "scanner_agent.cli.queue",
    "scanner_agent.cli.hw",
    "scanner_agent.cli.camera",
    "scanner_agent.cli.agent",
    "scanner_agent.cli.bills",
    "scanner_agent.cli.ops",
)
"""The command modules, in the order ``--help`` lists their commands.

Imported when the parser is built, not with this module: ``python -m
scanner_agent.cli.ops`` then runs its module once, as ``__main__``."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (also used by the docs test to list commands)."""
    parser = argparse.ArgumentParser(
        prog="scanner-agent",
        description="Edge agent for barcode scanners: read, validate, keep durably, sync.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"scanner-agent {__version__}")
    return with_commands(parser, (importlib.import_module(module).register for module in COMMANDS))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
