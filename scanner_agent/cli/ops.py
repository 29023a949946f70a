"""Operations commands: ``install``, ``uninstall``, ``udev-rules`` and ``doctor``.

Thin, like the rest of the CLI: each command calls one function of
:mod:`scanner_agent.ops.install` or :mod:`scanner_agent.ops.doctor` and prints its
report.  Registered through ``cli.app.COMMANDS``; ``python -m
scanner_agent.cli.ops`` runs the same commands without the rest of the CLI
(the Makefile's ``install`` target uses it with the system Python, before any
venv exists).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scanner_agent.cli._common import AddCommand
from scanner_agent.cli.output import (
    EXIT_OK,
    EXIT_PROBLEMS,
    json_flag,
    note,
    print_json,
)


def _layout(args: argparse.Namespace) -> Any:
    from scanner_agent.ops.layout import Layout

    return Layout.create(destdir=args.destdir, prefix=args.prefix, sysconfdir=args.sysconfdir)


def _print_report(args: argparse.Namespace, report: Any) -> None:
    """An install report: one line per step, or ``{"steps": [...], "warnings": [...]}``."""
    if args.json:
        steps = [{"what": what, "outcome": outcome} for what, outcome in report.steps]
        print_json({"steps": steps, "warnings": list(report.warnings)})
        return
    for line in report.lines():
        print(line)


def cmd_install(args: argparse.Namespace) -> int:
    """Install or upgrade the service (venv, unit, udev rules, user, default config)."""
    from scanner_agent.ops.install import install
    from scanner_agent.ops.roles import DEBIAN_PACKAGE, MAKE_INSTALL

    layout = _layout(args)
    report = install(
        layout,
        source=Path(args.source) if args.source else None,
        venv=not args.no_venv,
        python=args.python,
        extras=args.extras.split(","),
        method=DEBIAN_PACKAGE if args.debian_package else MAKE_INSTALL,
        compile_bytecode=not args.debian_package,
        package=args.debian_package,
    )
    _print_report(args, report)
    if not layout.staged and not args.json:
        print(
            f"next: edit {layout.config_file}, then `sudo systemctl start scanner-agent` "
            "and `scanner-agent doctor`"
        )
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    """Remove the service; the config and the outbox data stay."""
    from scanner_agent.ops.install import uninstall

    _print_report(args, uninstall(_layout(args)))
    return 0


def cmd_udev_rules(args: argparse.Namespace) -> int:
    """Print (or write, or check) the udev rules generated from the firmware profiles."""
    from scanner_agent.ops.udev import generate_udev_rules

    rules = generate_udev_rules([Path(d) for d in args.dir or []])
    if args.check:
        current = Path(args.check).read_text(encoding="utf-8") if Path(args.check).exists() else ""
        fresh = current == rules
        if args.json:
            print_json({"file": args.check, "up_to_date": fresh})
        elif fresh:
            print(f"{args.check}: up to date")
        else:
            note(f"{args.check} is out of date: run `scanner-agent udev-rules -o {args.check}`")
        return EXIT_OK if fresh else EXIT_PROBLEMS
    if args.output:
        Path(args.output).write_text(rules, encoding="utf-8")
        if args.json:
            print_json({"file": args.output, "written": True})
        else:
            print(f"{args.output}: written")
    elif args.json:
        print_json({"rules": rules})
    else:
        sys.stdout.write(rules)
    return EXIT_OK


_MARK = {"ok": " OK ", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check config, outbox, devices, profiles, trace service, token and clock."""
    from scanner_agent.config import DEFAULT_CONFIG_PATH
    from scanner_agent.ops.doctor import Options, run_doctor

    options = Options(
        config_path=Path(args.config) if args.config else DEFAULT_CONFIG_PATH,
        service_user=args.user,
        sysfs=Path(args.sysfs),
    )
    report = run_doctor(options)
    if args.json:
        print_json(report.to_dict())
    else:
        width = max(len(c.name) for c in report.checks)
        for c in report.checks:
            line = f"[{_MARK[c.status.value]}] {c.name:<{width}}  {c.detail}"
            if c.hint:
                line += f"  -> {c.hint}"
            print(line)
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def _layout_args(p: argparse.ArgumentParser) -> None:
    from scanner_agent.ops.layout import DEFAULT_PREFIX, DEFAULT_SYSCONFDIR

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
    p.add_argument(
        "--extras",
        default="all",
        help="comma-separated extras for the venv: all (default: every role), or some of "
        "tui, camera, wedge, hotplug, usb; empty for the daemon alone",
    )
    p.add_argument("--source", help="source checkout to install (default: this one)")
    p.add_argument(
        "--debian-package",
        action="store_true",
        help="debian/rules: venv, docs and config only, no bytecode (with --destdir)",
    )
    json_flag(p, "print the steps as JSON")

    p = add("uninstall", cmd_uninstall, "Remove the service; keep the config and outbox data.")
    _layout_args(p)
    json_flag(p, "print the steps as JSON")

    p = add("udev-rules", cmd_udev_rules, "Print the udev rules for the scanners profiles know.")
    p.add_argument("--dir", action="append", help="site profile directory (repeatable)")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")
    p.add_argument("--check", metavar="FILE", help="exit 3 when FILE differs from the rules")
    json_flag(p, 'print {"rules": TEXT}, or with --check {"file": F, "up_to_date": B}')

    p = add(
        "doctor", cmd_doctor, "Check that this box is ready to scan and sync; exit 3 on a failure."
    )
    p.add_argument("--config", "-c", help="config file (default /etc/scanner-agent/agent.toml)")
    json_flag(p, "print the checks as JSON")
    p.add_argument("--user", default="scanner-agent", help="service user to check access for")
    p.add_argument("--sysfs", default="/sys", help=argparse.SUPPRESS)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scanner_agent.cli.ops COMMAND``: the operations commands alone."""
    from scanner_agent.cli._dispatch import parser_for, run

    return run(parser_for([register]).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
