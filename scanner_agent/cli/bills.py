"""``scanner-agent bill ...``: bills (出入库单据), opened, filled and closed by the daemon.

The bill commands that change a bill are thin calls over the control socket
(:mod:`scanner_agent.control`): the daemon does the work, so a bill opened
from the CLI and one opened in the TUI are the same thing.  ``bill export``,
``history``, ``failed`` and ``types`` read files instead
(:mod:`scanner_agent.cli.bill_files`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from scanner_agent.cli._common import (
    AddCommand,
    Handler,
    call,
    control_args,
    read_text,
    scan_result,
)
from scanner_agent.cli.bill_files import register_export, register_offline
from scanner_agent.cli.output import (
    add_command,
    note,
    plural,
    print_json,
    print_json_lines,
    print_table,
    whole_number,
)
from scanner_agent.times import local

BILL_COLUMNS = ["bill", "type", "state", "scans", "units", "delivered", "rejected", "opened"]
"""The columns of ``bill list`` and the first line of ``bill show``."""


def _bill_row(b: dict[str, Any]) -> list[Any]:
    t = b["totals"]
    kind = f"{b['type']} {b['type_zh']}" if b.get("type") else b["type_zh"]
    opened = local(b["opened_at"]) if b.get("opened_at") else "-"
    return [
        b["number"],
        kind,
        b["state"],
        t["scans"],
        t["units"],
        t["delivered"],
        t["rejected"],
        opened,
    ]


def cmd_bill_open(args: argparse.Namespace) -> int:
    """Open a bill; scans for its action go to it until it is closed."""
    from scanner_agent.bills import parse_param_pairs

    params = parse_param_pairs(args.param)
    bill = call(
        args,
        "bill.open",
        number=args.number,
        type=args.type,
        action=args.action,
        note=args.note,
        params=params or None,
        **{"from": args.from_party, "to": args.to_party},
    )
    if args.expected:
        _import(args, args.expected, number=bill["number"], packs=False)
    if args.json:
        print_json(bill)
    else:
        print(f"opened {bill['number']}: {bill['type']} {bill['type_zh']} ({bill['action']})")
        if params:
            print("platform params: " + " ".join(f"{k}={v}" for k, v in params.items()))
    if bill.get("warning"):
        print(f"warning: {bill['warning']}", file=sys.stderr)
    return 0


def cmd_bill_close(args: argparse.Namespace) -> int:
    """Close a bill and hand its scans to sync."""
    bill = call(args, "bill.close", number=args.number)
    if args.json:
        print_json(bill)
    else:
        print(f"closed {bill['number']}: {plural(bill['totals']['scans'], 'scan')} handed to sync")
    return 0


def _print_removal(args: argparse.Namespace, r: dict[str, Any]) -> None:
    if args.json:
        print_json(r)
    else:
        print(f"removed scan {r['seq']} {r['code']} from {r['bill']}: {r['reason']}")


def cmd_bill_undo(args: argparse.Namespace) -> int:
    """Take the last scan off a bill."""
    r = call(args, "bill.undo", number=args.number, reason=args.reason, origin="cli")
    _print_removal(args, r)
    return 0


def cmd_bill_remove(args: argparse.Namespace) -> int:
    """Take one scan off a bill."""
    r = call(
        args,
        "bill.remove",
        number=args.number,
        seq=args.seq,
        code=args.code,
        reason=args.reason,
        origin="cli",
    )
    _print_removal(args, r)
    return 0


def _import(args: argparse.Namespace, file: str, *, number: str | None, packs: bool) -> Any:
    text = read_text(file)
    return call(args, "bill.import", number=number, csv=text, kind="packs" if packs else "expected")


def cmd_bill_import(args: argparse.Namespace) -> int:
    """Import a bill's expected list, or pack ratios, from CSV."""
    r = _import(args, args.file, number=args.number, packs=args.packs)
    if args.json:
        print_json(r)
    elif r["kind"] == "packs":
        print(f"imported {r['ratios']} pack ratios and {r['relations']} parent-child relations")
    else:
        print(f"imported the expected list of {r['bill']}: {r['products']} products")
    return 0


def cmd_bill_show(args: argparse.Namespace) -> int:
    """Show a bill: progress per product and its latest scans."""
    view = call(args, "bill.show", number=args.number, scans=args.scans)
    if args.json:
        print_json(view)
        return 0
    b = view["bill"]
    t = b["totals"]
    print_table(BILL_COLUMNS, [_bill_row(b)], empty="")
    print(f"  from {b['from_party'] or '-'} to {b['to_party'] or '-'}  action {b['action']}")
    print(
        f"  cartons {t['cartons']}  held {t.get('held', 0)}  pending {t['pending']}  "
        f"in flight {t['in_flight']}  delivered {t['delivered']} (duplicate {t['duplicate']})  "
        f"rejected {t['rejected']}  removed {t['removed']}  quarantined {t.get('quarantined', 0)}"
    )
    if view["lines"]:
        print()
        print_table(
            ["product", "expected", "scanned", "missing", "extra", "name"],
            [
                (
                    ln["product"],
                    ln["expected"],
                    ln["scanned"],
                    ln["missing"],
                    ln["extra"],
                    ln["name"],
                )
                for ln in view["lines"]
            ],
            empty="",
        )
    print()
    why = {r["seq"]: r["reason"] for r in view.get("removals", [])}
    print_table(
        ["seq", "scanned at", "code", "units", "result", "reason"],
        [
            (
                s["seq"],
                local(s["scanned_at"]),
                s["code"],
                f"x{s['units']}" if s["carton"] else "1",
                scan_result(s),
                why.get(s["seq"]) if s["state"] == "removed" else s["reason"],
            )
            for s in view["scans"]
        ],
        empty="no scans on this bill",
    )
    return 0


def cmd_bill_list(args: argparse.Namespace) -> int:
    """List bills, newest first."""
    # One more than asked for: whether the limit left any out.
    bills = call(args, "bill.list", state=args.state, limit=args.limit + 1)
    more = len(bills) > args.limit
    bills = bills[: args.limit]
    if args.json:
        print_json_lines(bills)
    elif bills or not more:
        print_table(
            BILL_COLUMNS,
            [_bill_row(b) for b in bills],
            empty=f"no {args.state} bills" if args.state else "no bills",
        )
    if more:
        note(f"showing the newest {plural(len(bills), 'bill')}; more are left out (--limit N)")
    return 0


def cmd_bill_ack(args: argparse.Namespace) -> int:
    """Acknowledge the platform's processing failures of a bill: its alarm goes."""
    r = call(args, "bill.ack", number=args.number, note=args.note)
    if args.json:
        print_json(r)
    else:
        numbers = ", ".join(c["number"] for c in r["cleared"])
        print(f"acknowledged {r['bill']}: {numbers}")
    return 0


# -- wiring -------------------------------------------------------------------------


def register(add: AddCommand) -> None:
    """Add ``bill`` and its subcommands."""
    bill = add(
        "bill", lambda a: 2, "Bills (出入库单据): open, close, undo, import, show, history, export."
    )
    sub = bill.add_subparsers(dest="bill_command", required=True, metavar="BILL_COMMAND")
    _register_live(sub)
    register_export(sub)
    _register_ack(sub)
    register_offline(sub)


def _live(sub: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    """A bill command that asks the running agent."""
    p = add_command(sub, name, help_text)
    p.set_defaults(handler=handler)
    control_args(p)
    return p


def _register_live(sub: Any) -> None:
    """``open``, ``close``, ``undo``, ``remove``, ``import``, ``show``, ``list``: the agent does them."""
    from scanner_agent.outbox import BillState

    p = _live(
        sub, "open", cmd_bill_open, "Open a bill; scans for its action go to it until closed."
    )
    p.add_argument("number", help="bill number (unique per site)")
    p.add_argument("--type", "-t", required=True, help="platform bill type, e.g. 201 (bill types)")
    p.add_argument("--from", dest="from_party", help="shipping party")
    p.add_argument("--to", dest="to_party", help="receiving party")
    p.add_argument("--note")
    p.add_argument("--action", help="override the type's scan action")
    p.add_argument("--expected", metavar="CSV", help="import this expected list at once")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an optional 码上放心 upload parameter of this bill, e.g. warehouse_id=WH-1; "
        "overrides alihealth.extra (repeatable; kept in the bill's history)",
    )

    p = _live(sub, "close", cmd_bill_close, "Close a bill and hand its scans to sync.")
    p.add_argument("number", nargs="?", help="bill number (default: the open one)")

    p = _live(sub, "undo", cmd_bill_undo, "Take the last scan off an open bill.")
    p.add_argument("number", nargs="?", help="bill number (default: the open one)")
    p.add_argument("--reason", "-r", required=True, help="why (kept in the bill's log)")

    p = _live(sub, "remove", cmd_bill_remove, "Take one scan off an open bill.")
    p.add_argument("number", nargs="?", help="bill number (default: the open one)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seq", type=int, help="the scan's sequence number")
    which.add_argument("--code", help="the scanned code")
    p.add_argument("--reason", "-r", required=True, help="why (kept in the bill's log)")

    p = _live(
        sub, "import", cmd_bill_import, "Import an expected list (or --packs ratios) from CSV."
    )
    p.add_argument("file", help="CSV file (UTF-8)")
    p.add_argument("--bill", dest="number", help="bill number (default: the open one)")
    p.add_argument("--packs", action="store_true", help="the file is a pack-ratio table")

    p = _live(sub, "show", cmd_bill_show, "Show a bill's progress and latest scans.")
    p.add_argument("number", nargs="?", help="bill number (default: the open one)")
    p.add_argument("--scans", type=int, default=20, help="latest scans to list (default 20)")

    p = _live(sub, "list", cmd_bill_list, "List bills, newest first.")
    p.add_argument(
        "--state",
        choices=[s.value for s in BillState if s is not BillState.DEFAULT],
        help="filter (empty: closed with no scans on it)",
    )
    p.add_argument(
        "--limit",
        type=whole_number,
        default=50,
        metavar="N",
        help="list at most N bills, the newest first (default 50)",
    )


def _register_ack(sub: Any) -> None:
    """``ack``: the agent clears a bill's platform-failure alarm (listed after ``export``)."""
    p = _live(sub, "ack", cmd_bill_ack, "Acknowledge the platform's processing failure of a bill.")
    p.add_argument("number", help="bill number (as scanned, not a sub-bill)")
    p.add_argument("--note", "-n", default="", help="what was done (kept in the bill's log)")
