"""``scanner-agent``: the command line, a package of thin commands (sqlite-utils' rule).

Each command module holds one group of subcommands and a ``register(add)``
that adds them to the parser; every command opens what it needs, calls one
library method and prints the result through :mod:`scanner_agent.cli.output`
(tables for people, ``--json`` for programs, the documented exit status).
:mod:`scanner_agent.cli.app` builds the parser and runs a command; the
console script ``scanner-agent`` is :func:`main`.

The modules import only downwards (the library, :mod:`.output` and
:mod:`._common`; the ``bill`` group alone spans two modules, :mod:`.bills`
and :mod:`.bill_files`), and a command module is imported only when the parser is built,
so ``python -m scanner_agent.cli.ops`` (the Makefile's ``install``, with the
system Python) runs alone.
"""

from scanner_agent.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
