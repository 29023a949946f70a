"""``scanner-agent bill export``, ``history``, ``failed`` and ``types``: a bill's records read
offline, from the outbox file (the daemon may keep running) or the shipped table.

Part of the ``bill`` group (:mod:`scanner_agent.cli.bills` registers them): each
opens the outbox file itself and calls one library function.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from scanner_agent.cli._common import (
    Handler,
    outbox_args,
    outbox_file,
    read_outbox,
    read_text,
)
from scanner_agent.cli.output import (
    EXIT_OK,
    EXIT_PROBLEMS,
    add_command,
    json_flag,
    note,
    plural,
    print_json_lines,
    print_table,
)
from scanner_agent.kernel import ScannerAgentError, UsageError
from scanner_agent.times import local


def export_nhsa(
    outbox_path: Path,
    number: str,
    *,
    record: str | None = None,
    catalog_csv: str | None = None,
    settings: list[str] | None = None,
    trace_node: str = "drugtracinfo",
) -> dict[str, Any]:
    """The 医保 (NHSA) records of bill ``number`` from the outbox file (``exports.nhsa.export_bill``).

    Raises:
        ScannerAgentError: no such bill, an unknown field or record type, a bad catalogue.
    """
    from scanner_agent.exports import nhsa
    from scanner_agent.outbox import Outbox

    with Outbox.open(outbox_path) as outbox:
        try:
            return nhsa.export_bill(
                outbox,
                number,
                record=record,
                catalog_csv=catalog_csv,
                settings=settings or [],
                trace_node=trace_node,
            )
        except ValueError as exc:
            raise UsageError(f"bill export {number}: {exc}") from None


def cmd_bill_export(args: argparse.Namespace) -> int:
    """Write a bill's records for another system (``--format nhsa``: 医保 3505/3506/3502).

    The output is a JSON document (``--json`` says so explicitly).  Required
    fields left empty are named on stderr; with ``--strict`` they make the exit
    status 3 (ran, but found problems), so a script never sends such a file on.
    """
    catalog_csv = read_text(args.catalog) if args.catalog else None
    doc = export_nhsa(
        outbox_file(args),
        args.number,
        record=args.record,
        catalog_csv=catalog_csv,
        settings=args.set,
        trace_node=args.trace_node,
    )
    # Indented for a file or a terminal; --json: one line, like every other --json.
    text = json.dumps(doc, ensure_ascii=False, indent=None if args.json else 2) + "\n"
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ScannerAgentError(f"Failed to write {args.output!r}: {exc}") from exc
    else:
        sys.stdout.write(text)
    for m in doc["missing"]:
        note(
            f"note: record {m['record']} ({m['product']}): required fields empty: "
            + ", ".join(m["fields"])
        )
    if not doc["records"]:
        note(f"note: bill {args.number} has no scans to export")
    if args.strict and doc["missing"]:
        note(
            f"{plural(len(doc['missing']), 'record')} with required fields empty "
            "(--strict): give them with --catalog or --set"
        )
        return EXIT_PROBLEMS
    return EXIT_OK


def cmd_bill_history(args: argparse.Namespace) -> int:
    """Print a bill's history (open, close, uploads, the platform's processing state)."""
    from scanner_agent.bills import BillBook

    with read_outbox(args) as outbox:
        entries = BillBook(outbox).history(args.number, must_exist=True)
    if args.json:
        print_json_lines(entries)
        return 0
    print_table(
        ["at", "event", "detail"],
        [(local(e["at"]), e["event"], e["detail"]) for e in entries],
        empty=f"{args.number}: no history (a default bill: scans only, see bill show)",
    )
    return 0


def cmd_bill_failed(args: argparse.Namespace) -> int:
    """List bills the trace platform failed to process (码上放心 deal_status 4), not acknowledged."""
    from scanner_agent.sinks.alihealth import platform_failures

    with read_outbox(args) as outbox:
        found = [dataclasses.asdict(f) for f in platform_failures(outbox)]
    if args.json:
        print_json_lines(found)
        return 0
    print_table(
        ["bill", "at", "detail"],
        [(f["bill"], local(f["at"]), f["detail"]) for f in found],
        empty="no bills failed on the trace platform (none waiting for `bill ack`)",
    )
    if found:
        note(
            "fix them on the platform (or scan a new bill), then "
            "`scanner-agent bill ack BILL --note ...`"
        )
    return 0


def cmd_bill_types(args: argparse.Namespace) -> int:
    """List the platform's bill types (offline: the shipped table)."""
    from scanner_agent.bills import bill_types

    types = list(bill_types().values())
    if args.json:
        print_json_lines(t.to_dict() for t in types)
    else:
        print_table(
            ["code", "direction", "action", "name", "english"],
            [(t.code, t.direction, t.action, t.zh, t.en) for t in types],
            empty="no bill types",
        )
    return 0


# -- wiring -------------------------------------------------------------------------


def register_export(sub: Any) -> None:
    """``export``: the bill's records for another system, from the outbox file."""
    p = add_command(
        sub,
        "export",
        "Write a bill's records for another system (offline, from the outbox file).",
        description="Write a bill's records for another system: --format nhsa gives the 医保 "
        "3505 sale / 3506 sale return / 3502 stock change records with one drug_trac_codg "
        "per box, as one JSON document. Reads the outbox file; the daemon may keep running.",
    )
    p.set_defaults(handler=cmd_bill_export)
    p.add_argument("number", help="bill number")
    p.add_argument("--format", required=True, choices=["nhsa"], help="record format")
    outbox_args(p)
    p.add_argument(
        "--record",
        choices=["3505", "3506", "3502"],
        help="NHSA transaction (default: from the bill: sales 3505, consumer returns 3506, "
        "else 3502)",
    )
    p.add_argument(
        "--catalog",
        metavar="CSV",
        help="per-product values: a 'product' column (cn20 drug code or GTIN) and NHSA fields",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a field for every record, e.g. phar_name=... (repeatable)",
    )
    p.add_argument(
        "--trace-node",
        default="drugtracinfo",
        help="name of the trace-code list node (default drugtracinfo)",
    )
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 3 when a record has required fields empty (they are named on stderr)",
    )
    json_flag(p, "print JSON (the default: the export is one JSON document)")


def _offline(sub: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    """A bill command that reads the outbox file itself."""
    p = add_command(sub, name, help_text, description=help_text + " Reads the outbox file.")
    p.set_defaults(handler=handler)
    outbox_args(p)
    json_flag(p, "print JSON (a list: one object per line)")
    return p


def register_offline(sub: Any) -> None:
    """``history``, ``failed`` (the outbox file) and ``types`` (the shipped table)."""
    p = _offline(
        sub,
        "history",
        cmd_bill_history,
        "Print a bill's history: open, imports, removals, close, uploads, platform status.",
    )
    p.add_argument("number", help="bill number")

    _offline(
        sub,
        "failed",
        cmd_bill_failed,
        "List bills the trace platform failed to process (码上放心 deal_status 4), "
        "not yet acknowledged.",
    )

    p = add_command(sub, "types", "List the platform's bill types.")
    p.set_defaults(handler=cmd_bill_types)
    json_flag(p, "print one JSON object per type (JSON Lines)")
