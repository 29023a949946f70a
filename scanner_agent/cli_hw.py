"""Hardware commands: ``scanner-agent devices`` and ``scanner-agent profiles list|show|validate``.

Thin, like the rest of the CLI: ``devices`` is one call to
:func:`drivers.discovery.discover`, the ``profiles`` commands one call each to
:mod:`scanner_agent.profiles`.  Registered through ``cli.EXTENSIONS``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scanner_agent import profiles
from scanner_agent.errors import ScannerAgentError

Handler = Callable[[argparse.Namespace], int]
AddCommand = Callable[[str, Handler, str], argparse.ArgumentParser]


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _dirs(args: argparse.Namespace) -> list[Path]:
    """Profile directories besides the shipped ones: ``--dir``, else the site directory."""
    if args.dir:
        return [Path(d) for d in args.dir]
    return [profiles.SITE_PROFILE_DIR]


# -- devices -------------------------------------------------------------------------


def cmd_devices(args: argparse.Namespace) -> int:
    """List the scanners (and other candidates) attached now."""
    from drivers.discovery import discover

    found = discover(args.sysfs, profile_dirs=_dirs(args))
    if args.json:
        _print_json(found.to_dict())
        return 0
    for title, devices in (
        ("Serial ports", found.serial),
        ("HID devices", found.hid),
        ("Input devices", found.input),
        ("Cameras", found.cameras),
    ):
        print(f"{title}:")
        if not devices:
            print("  (none)")
        for d in devices:
            matches = ", ".join(f"{m.profile} ({m.mode})" for m in d.profiles) or "-"
            flags = []
            if d.hid_pos:
                flags.append("HID POS")
            if d.keyboard:
                flags.append("keyboard")
            print(
                f"  {d.path:<22} {d.usb_id or '-':<10} {d.serial_number or '-':<16} "
                f"{d.name or d.product or '-'}"
                + (f" [{', '.join(flags)}]" if flags else "")
                + f"  profiles: {matches}"
            )
    return 0


# -- profiles ------------------------------------------------------------------------


def _profile_dict(profile: profiles.Profile) -> dict[str, Any]:
    """A JSON-ready dict: command bytes as hex."""

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.hex(" ")
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    data: dict[str, Any] = plain(dataclasses.asdict(profile))
    return data


def cmd_profiles_list(args: argparse.Namespace) -> int:
    """One line per profile: id, vendor, model, interfaces."""
    rows: list[dict[str, Any]] = []
    for stem in profiles.list_profiles(_dirs(args)):
        try:
            p = profiles.load_profile(stem, _dirs(args))
        except profiles.ProfileError as exc:
            rows.append({"id": stem, "error": str(exc)})
            continue
        rows.append(
            {"id": p.id, "vendor": p.vendor, "model": p.model, "interfaces": list(p.interfaces)}
        )
    if args.json:
        _print_json(rows)
        return 0
    for row in rows:
        if "error" in row:
            print(f"{row['id']:<30} INVALID: {row['error']}")
        else:
            print(
                f"{row['id']:<30} {row['vendor']} {row['model']}  ({', '.join(row['interfaces'])})"
            )
    return 0


def cmd_profiles_show(args: argparse.Namespace) -> int:
    """Everything a profile says, validated."""
    try:
        p = profiles.load_profile(args.name, _dirs(args))
    except profiles.ProfileError as exc:
        raise ScannerAgentError(str(exc)) from exc
    data = _profile_dict(p)
    if args.json:
        _print_json(data)
        return 0
    for key, value in data.items():
        if isinstance(value, dict):
            items = {k: v for k, v in value.items() if v not in (None, "")}
            print(f"{key}:" if items else f"{key}: -")
            for sub, item in items.items():
                print(f"  {sub}: {item}")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            print(f"{key}:")
            for item in value:
                print("  " + ", ".join(f"{k}={v}" for k, v in item.items()))
        elif isinstance(value, list):
            print(f"{key}: {', '.join(map(str, value)) or '-'}")
        else:
            print(f"{key}: {'-' if value is None else value}")
    return 0


def cmd_profiles_validate(args: argparse.Namespace) -> int:
    """Load every profile; exit 1 when any is invalid (each error on stderr)."""
    dirs = _dirs(args)
    errors = profiles.validate_all(dirs)
    for error in errors:
        print(error, file=sys.stderr)
    total = len(profiles.list_profiles(dirs))
    print(f"{total - len(errors)} of {total} profiles valid")
    return 1 if errors else 0


# -- wiring --------------------------------------------------------------------------


def _dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dir",
        action="append",
        metavar="DIR",
        help=f"extra profile directory, repeatable (default {profiles.SITE_PROFILE_DIR})",
    )


def register(add: AddCommand) -> None:
    """Add ``devices`` and ``profiles`` to the ``scanner-agent`` parser."""
    p = add(
        "devices",
        cmd_devices,
        "List serial ports, HID devices, input devices and cameras with their USB ids "
        "and matching firmware profiles.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--sysfs", default="/sys", help="sysfs root to read (default /sys)")
    _dir_arg(p)

    group = add("profiles", lambda _args: 2, "List, show and validate firmware profiles.")
    sub = group.add_subparsers(dest="profiles_command", required=True, metavar="PROFILES_COMMAND")

    def padd(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_text, description=help_text)
        q.set_defaults(handler=handler)
        _dir_arg(q)
        return q

    q = padd("list", cmd_profiles_list, "List the available profiles.")
    q.add_argument("--json", action="store_true", help="print a JSON array")
    q = padd("show", cmd_profiles_show, "Show one profile, validated.")
    q.add_argument("name", help="profile id (file stem), e.g. newland-hr22")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    padd("validate", cmd_profiles_validate, "Validate every profile; exit 1 on errors.")
