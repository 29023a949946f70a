"""Hardware commands: ``scanner-agent devices`` and ``scanner-agent profiles list|show|validate``.

Thin, like the rest of the CLI: ``devices`` is one call to
:func:`drivers.discovery.discover`, the ``profiles`` commands one call each to
:mod:`drivers.profiles`.  Registered through ``cli.app.COMMANDS``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from drivers import profiles
from scanner_agent.cli._common import AddCommand, Handler
from scanner_agent.cli.output import (
    EXIT_OK,
    EXIT_PROBLEMS,
    add_command,
    cell,
    json_flag,
    note,
    print_json,
    print_json_lines,
    print_table,
)
from scanner_agent.kernel import UsageError


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
        print_json(found.to_dict())
        return 0
    for i, (title, devices) in enumerate(
        (
            ("Serial ports", found.serial),
            ("HID devices", found.hid),
            ("Input devices", found.input),
            ("Cameras", found.cameras),
        )
    ):
        print(("\n" if i else "") + f"{title}:")
        rows = []
        for d in devices:
            flags = [f for f, on in (("HID POS", d.hid_pos), ("keyboard", d.keyboard)) if on]
            name = (d.name or d.product or "-") + (f" [{', '.join(flags)}]" if flags else "")
            matches = [f"{m.profile} ({m.mode})" for m in d.profiles]
            rows.append((d.path, d.usb_id, d.serial_number, name, matches))
        print_table(["device", "usb id", "serial", "name", "profiles"], rows, empty="(none)")
    return 0


# -- profiles ------------------------------------------------------------------------


def _profile_dict(profile: profiles.Profile) -> dict[str, Any]:
    """A JSON-ready dict: command bytes as hex, each USB identity with its ``usb_id`` text."""

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.hex(" ")
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    data: dict[str, Any] = plain(dataclasses.asdict(profile))
    data["usb_ids"] = [
        {**d, "usb_id": u.text} for d, u in zip(data["usb_ids"], profile.usb_ids, strict=True)
    ]
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
        print_json_lines(rows)
        return 0
    print_table(
        ["profile", "vendor", "model", "interfaces"],
        [
            (r["id"], "INVALID", r["error"], None)
            if "error" in r
            else (r["id"], r["vendor"], r["model"], r["interfaces"])
            for r in rows
        ],
        empty="no profiles",
    )
    return 0


def cmd_profiles_show(args: argparse.Namespace) -> int:
    """Everything a profile says, validated."""
    try:
        p = profiles.load_profile(args.name, _dirs(args))
    except profiles.ProfileError as exc:
        raise UsageError(str(exc)) from exc
    data = _profile_dict(p)
    if args.json:
        print_json(data)
        return 0
    for key, value in data.items():
        if key == "usb_ids":
            # Hex, as lsusb, the udev rules and `devices` print them: 1eab:1a10.
            print(f"{key}:" if value else f"{key}: -")
            for u in value:
                print(f"  {u['usb_id']}  {u['mode']}")
        elif isinstance(value, dict):
            items = {k: v for k, v in value.items() if v not in (None, "")}
            print(f"{key}:" if items else f"{key}: -")
            for sub, item in items.items():
                print(f"  {sub}: {cell(item)}")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            print(f"{key}:")
            for item in value:
                print("  " + ", ".join(f"{k}={cell(v)}" for k, v in item.items()))
        else:
            print(f"{key}: {cell(value)}")
    return 0


def cmd_profiles_validate(args: argparse.Namespace) -> int:
    """Load every profile; exit 3 when any is invalid (each error on stderr)."""
    dirs = _dirs(args)
    errors = [str(e) for e in profiles.validate_all(dirs)]
    total = len(profiles.list_profiles(dirs))
    if args.json:
        print_json({"profiles": total, "valid": total - len(errors), "errors": errors})
    else:
        for error in errors:
            note(error)
        print(f"{total - len(errors)} of {total} profiles valid")
    return EXIT_PROBLEMS if errors else EXIT_OK


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
    json_flag(p, "print one JSON object")
    p.add_argument("--sysfs", default="/sys", help="sysfs root to read (default /sys)")
    _dir_arg(p)

    group = add("profiles", lambda _args: 2, "List, show and validate firmware profiles.")
    sub = group.add_subparsers(dest="profiles_command", required=True, metavar="PROFILES_COMMAND")

    def padd(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        q = add_command(sub, name, help_text)
        q.set_defaults(handler=handler)
        _dir_arg(q)
        return q

    q = padd("list", cmd_profiles_list, "List the available profiles.")
    json_flag(q, "print one JSON object per profile (JSON Lines)")
    q = padd("show", cmd_profiles_show, "Show one profile, validated (USB ids in hex).")
    q.add_argument("name", help="profile id (file stem), e.g. newland-hr22")
    json_flag(q, "print one JSON object")
    q = padd(
        "validate", cmd_profiles_validate, "Validate every profile; exit 3 when any is invalid."
    )
    json_flag(q, "print the counts and errors as one JSON object")
