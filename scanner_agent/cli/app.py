"""``scanner-agent``: one console script, a subcommand per job.

The CLI is thin (sqlite-utils' rule): each command parses its arguments,
calls one library function and prints the result through
:mod:`scanner_agent.cli.output` (tables for people, ``--json`` for programs);
a :class:`ScannerAgentError` becomes a message on stderr and the documented
exit status (:data:`~scanner_agent.cli.output.EXIT_CODES`), so piped JSON
output is never mixed with errors.

This module builds the parser from the command modules (:data:`COMMANDS`,
each with a ``register(add)``) and runs the chosen command; it holds no
command itself.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from scanner_agent import __version__
from scanner_agent.cli._common import AddCommand, Handler
from scanner_agent.cli.output import EPILOG, add_command, exit_code
from scanner_agent.kernel import ScannerAgentError
from scanner_agent.ops.logs import for_stderr

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

Register = Callable[[AddCommand], None]
"""A command module's ``register(add)``: adds its subcommands to the parser."""


def parser_for(registers: Iterable[Register], **root: Any) -> argparse.ArgumentParser:
    """A ``scanner-agent`` parser with the commands ``registers`` add (``root``: its keywords)."""
    parser = argparse.ArgumentParser(
        prog="scanner-agent",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **root,
    )
    return _with_commands(parser, registers)


def _with_commands(
    parser: argparse.ArgumentParser, registers: Iterable[Register]
) -> argparse.ArgumentParser:
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = add_command(sub, name, help_text)
        p.set_defaults(handler=handler)
        return p

    for register in registers:
        register(add)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (also used by the docs test to list commands)."""
    parser = argparse.ArgumentParser(
        prog="scanner-agent",
        description="Edge agent for barcode scanners: read, validate, keep durably, sync.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"scanner-agent {__version__}")
    return _with_commands(parser, (importlib.import_module(module).register for module in COMMANDS))


def run(args: argparse.Namespace) -> int:
    """Run the command ``args`` chose; an error becomes one line on stderr and its exit status."""
    from scanner_agent.ops.preflight import Refusal

    handler: Handler = args.handler
    try:
        return handler(args)
    except ScannerAgentError as exc:
        print(for_stderr(f"scanner-agent: error: {exc}", logging.ERROR), file=sys.stderr)
        if isinstance(exc, Refusal) and exc.hint:
            print(for_stderr(f"scanner-agent: hint: {exc.hint}", logging.ERROR), file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
