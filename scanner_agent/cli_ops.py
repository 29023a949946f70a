"""Operations commands: ``install``, ``uninstall``, ``udev-rules`` and ``doctor``.

Thin, like the rest of the CLI: each command calls one function of
:mod:`scanner_agent.install` or :mod:`scanner_agent.doctor` and prints its
report.  Registered through ``cli.EXTENSIONS``; ``python -m
scanner_agent.cli_ops`` runs the same commands without the rest of the CLI
(the Makefile's ``install`` target uses it with the system Python, before any
venv exists).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scanner_agent.errors import ScannerAgentError

Handler = Callable[[argparse.Namespace], int]
AddCommand = Callable[[str, Handler, str], argparse.ArgumentParser]


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _layout(args: argparse.Namespace) -> Any:
    from scanner_agent.install import Layout

    return Layout.create(destdir=args.destdir, prefix=args.prefix, sysconfdir=args.sysconfdir)


def _print_report(report: Any) -> None:
    for line in report.lines():
        print(line)


def cmd_install(args: argparse.Namespace) -> int:
    """Install or upgrade the service (venv, unit, udev rules, user, default config)."""
    from scanner_agent.install import install

    layout = _layout(args)
    report = install(
        layout,
        source=Path(args.source) if args.source else None,
        venv=not args.no_venv,
        python=args.python,
    )
    _print_report(report)
    if not layout.staged:
        print(
            f"next: edit {layout.config_file}, then `sudo systemctl start scanner-agent` "
            "and `scanner-agent doctor`"
        )
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    """Remove the service; the config and the outbox data stay."""
    from scanner_agent.install import uninstall

    _print_report(uninstall(_layout(args)))
    return 0


def cmd_udev_rules(args: argparse.Namespace) -> int:
    """Print (or write, or check) the udev rules generated from the firmware profiles."""
    from scanner_agent.install import generate_udev_rules

    rules = generate_udev_rules([Path(d) for d in args.dir or []])
    if args.check:
        current = Path(args.check).read_text(encoding="utf-8") if Path(args.check).exists() else ""
        if current != rules:
            print(
                f"{args.check} is out of date: run `scanner-agent udev-rules -o {args.check}`",
                file=sys.stderr,
            )
            return 1
        print(f"{args.check}: up to date")
        return 0
    if args.output:
        Path(args.output).write_text(rules, encoding="utf-8")
    else:
        sys.stdout.write(rules)
    return 0


_MARK = {"ok": " OK ", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check config, outbox, devices, profiles, trace service, token and clock."""
    from scanner_agent.config import DEFAULT_CONFIG_PATH
    from scanner_agent.doctor import Options, run_doctor

    options = Options(
        config_path=Path(args.config) if args.config else DEFAULT_CONFIG_PATH,
        service_user=args.user,
        sysfs=Path(args.sysfs),
    )
    report = run_doctor(options)
    if args.json:
        _print_json(report.to_dict())
    else:
        width = max(len(c.name) for c in report.checks)
        for c in report.checks:
            line = f"[{_MARK[c.status.value]}] {c.name:<{width}}  {c.detail}"
            if c.hint:
                line += f"  -> {c.hint}"
            print(line)
    return 0 if report.ok else 1


def _layout_args(p: argparse.ArgumentParser) -> None:
    from scanner_agent.install import DEFAULT_PREFIX, DEFAULT_SYSCONFDIR

    p.add_argument("--destdir", default="", help="staging root (DESTDIR); no system commands run")
    p.add_argument("--prefix", default=str(DEFAULT_PREFIX), help=f"default {DEFAULT_PREFIX}")
    p.add_argument(
        "--sysconfdir", default=str(DEFAULT_SYSCONFDIR), help=f"default {DEFAULT_SYSCONFDIR}"
    )


def register(add: AddCommand) -> None:
    """Add the operations commands to the ``scanner-agent`` parser."""
    p = add("install", cmd_install, "Install or upgrade the systemd service (run as root).")
    _layout_args(p)
    p.add_argument("--no-venv", action="store_true", help="do not build the venv (packaging)")
    p.add_argument("--python", help="interpreter for the venv (default /usr/bin/python3)")
    p.add_argument("--source", help="source checkout to install (default: this one)")

    p = add("uninstall", cmd_uninstall, "Remove the service; keep the config and outbox data.")
    _layout_args(p)

    p = add("udev-rules", cmd_udev_rules, "Print the udev rules for the scanners profiles know.")
    p.add_argument("--dir", action="append", help="site profile directory (repeatable)")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")
    p.add_argument("--check", metavar="FILE", help="exit 1 when FILE differs from the rules")

    p = add("doctor", cmd_doctor, "Check that this box is ready to scan and sync.")
    p.add_argument("--config", "-c", help="config file (default /etc/scanner-agent/agent.toml)")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.add_argument("--user", default="scanner-agent", help="service user to check access for")
    p.add_argument("--sysfs", default="/sys", help=argparse.SUPPRESS)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scanner_agent.cli_ops COMMAND``: the operations commands alone."""
    parser = argparse.ArgumentParser(prog="scanner-agent")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    register(add)
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ScannerAgentError as exc:
        print(f"scanner-agent: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
