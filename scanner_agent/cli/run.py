"""``scanner-agent run`` and ``check-config``: the daemon, and what it checks before it starts."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from scanner_agent.cli._common import AddCommand, config_arg, load
from scanner_agent.cli.output import json_flag, plural, print_json
from scanner_agent.config import DEFAULT_CONFIG_PATH
from scanner_agent.ops.layout import SERVICE_USER
from scanner_agent.ops.preflight import check_user, preflight


def _config_path(args: argparse.Namespace) -> str:
    """The config file as named on the command line (errors quote it as given)."""
    return str(args.config or DEFAULT_CONFIG_PATH)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM/SIGINT."""
    from scanner_agent.ops.serve import serve

    serve(load(args), _config_path(args), log_level=args.log_level)
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file as ``run`` would (:func:`preflight`) and print it resolved."""
    cfg = load(args)
    user = check_user(args.user)
    for warning in preflight(cfg, user, _config_path(args)):
        print(f"scanner-agent: warning: {warning}", file=sys.stderr)
    if args.json:
        print_json({**dataclasses.asdict(cfg), "checked_as": user.name})
    else:
        print(
            f"{_config_path(args)}: OK ({plural(len(cfg.sources), 'source')}; "
            f"files and directories checked as user {user.name})"
        )
    return 0


def register(add: AddCommand) -> None:
    """Add ``run`` and ``check-config``."""
    p = add("run", cmd_run, "Run the agent daemon: sources -> outbox -> sync.")
    config_arg(p)
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    p = add(
        "check-config",
        cmd_check_config,
        "Validate a config file: everything `run` checks before it starts.",
    )
    config_arg(p)
    json_flag(p, "print the resolved config as JSON")
    p.add_argument(
        "--user",
        help=f"check file access as this user (default: {SERVICE_USER} when run as root "
        "and it exists, else the current user)",
    )
