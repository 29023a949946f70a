"""The ``scanner-agent`` parser for a set of command modules, and the running of the chosen
command: shared by the whole CLI (:mod:`.app`, every module of ``COMMANDS``) and
``python -m scanner_agent.cli.ops`` (its commands alone).

Here, below both, so that :mod:`.ops` runs alone without importing :mod:`.app`, which
names it in ``COMMANDS``: no cycle through that import by name.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

from scanner_agent.cli._common import AddCommand, Handler
from scanner_agent.cli.output import EPILOG, add_command, exit_code
from scanner_agent.kernel import ScannerAgentError
from scanner_agent.ops.logs import for_stderr

__all__ = ["AddCommand", "Handler", "Register", "parser_for", "run", "with_commands"]

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
    return with_commands(parser, registers)


def with_commands(
    parser: argparse.ArgumentParser, registers: Iterable[Register]
) -> argparse.ArgumentParser:
    """``parser`` with a subcommand for each command the ``registers`` add."""
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = add_command(sub, name, help_text)
        p.set_defaults(handler=handler)
        return p

    for register in registers:
        register(add)
    return parser


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
