"""``scanner-agent run`` and ``check-config``: the daemon, and what it checks before it starts."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
from pathlib import Path

from scanner_agent.cli._common import AddCommand, config_arg, load
from scanner_agent.cli.output import json_flag, plural, print_json
from scanner_agent.config import DEFAULT_CONFIG_PATH, AgentConfig
from scanner_agent.kernel import ConfigError
from scanner_agent.ops.layout import SERVICE_USER
from scanner_agent.ops.preflight import Refusal, RunAs, check_user, preflight

PRIVATE_UMASK = 0o027
"""``run``'s umask: files at most 0640, directories 0750 (the unit's ``UMask=`` too)."""


def _preflight(args: argparse.Namespace, cfg: AgentConfig, user: RunAs) -> list[str]:
    """:func:`preflight`, its errors naming the config file as :func:`load_config`'s do."""
    path = str(args.config or DEFAULT_CONFIG_PATH)
    try:
        return preflight(cfg, user, Path(path))
    except Refusal as exc:
        raise exc.at(path) from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def cmd_run(args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM/SIGINT."""
    from scanner_agent.daemon import Daemon, install_signal_handlers
    from scanner_agent.interpreter import tune_interpreter
    from scanner_agent.ops.logs import setup_logging

    cfg = load(args)
    # Before anything is created, migrated or logged: what check-config checks, as this user.
    warnings = _preflight(args, cfg, RunAs.me())
    setup_logging(args.log_level or cfg.log_level)
    for warning in warnings:
        logging.getLogger("scanner_agent").warning("%s", warning)
    # Process-wide, so here and not in Daemon.run: a daemon built in another
    # program (a test, the demo) leaves that program's interpreter alone.
    tune_interpreter()
    # Files the agent creates (outbox, WAL, socket) get no "other" bits whatever the
    # caller's umask (systemd sets UMask=0027 too); a stricter umask is kept.
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)

    async def main() -> None:
        daemon = Daemon(cfg, config_path=args.config or DEFAULT_CONFIG_PATH)
        install_signal_handlers(daemon)
        await daemon.run()

    asyncio.run(main())
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file as ``run`` would (:func:`preflight`) and print it resolved."""
    cfg = load(args)
    user = check_user(args.user)
    for warning in _preflight(args, cfg, user):
        print(f"scanner-agent: warning: {warning}", file=sys.stderr)
    if args.json:
        print_json({**dataclasses.asdict(cfg), "checked_as": user.name})
    else:
        print(
            f"{args.config or DEFAULT_CONFIG_PATH}: OK ({plural(len(cfg.sources), 'source')}; "
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
