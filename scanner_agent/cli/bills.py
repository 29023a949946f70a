"""``scanner-agent status``, ``bill ...``, ``lookup`` and ``tui``: talk to the running daemon.

Every command here is a thin call over the control socket
(:mod:`scanner_agent.control`); the daemon does the work, so a bill opened
from the CLI and one opened in the TUI are the same thing.  Textual is only
imported by ``tui``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from scanner_agent.cli.output import (
    EXIT_OK,
    EXIT_PROBLEMS,
    add_command,
    cell,
    json_flag,
    note,
    plural,
    print_fields,
    print_json,
    print_json_lines,
    print_table,
    whole_number,
)
from scanner_agent.config import DEFAULT_CONFIG_PATH, ControlConfig, load_config
from scanner_agent.kernel import ScannerAgentError, UsageError
from scanner_agent.times import local

AddCommand = Any  # scanner_agent.cli.app.AddCommand; not imported to keep the module light


def socket_path(args: argparse.Namespace) -> str:
    """``--socket``, else ``control.socket`` of the config (``-c`` or the default file)."""
    if getattr(args, "socket", None):
        return str(args.socket)
    config = getattr(args, "config", None)
    if config:
        return load_config(config).control.socket
    if DEFAULT_CONFIG_PATH.exists():
        return load_config(DEFAULT_CONFIG_PATH).control.socket
    return ControlConfig().socket


def _call(args: argparse.Namespace, cmd: str, **params: Any) -> Any:
    from scanner_agent.control import ControlClient, RemoteError

    path = socket_path(args)
    if not path:
        raise ScannerAgentError("control.socket is empty: the control interface is off")
    with ControlClient(path) as client:
        try:
            return client.call(cmd, **{k: v for k, v in params.items() if v is not None})
        except RemoteError as exc:
            # The agent found the request itself wrong: a usage error (2); else it failed (1).
            error = UsageError if exc.code == "bad_request" else ScannerAgentError
            raise error(str(exc)) from None


# -- status ----------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    """Print the daemon's status."""
    st = _call(args, "status")
    if args.json:
        print_json(st)
        return 0
    sync = st.get("sync") or {}
    refused = st["refused"]
    rows: list[tuple[str, Any]] = [
        ("agent", f"{st['device_id']}  {st['state']}  up {st['uptime_s']} s"),
        ("link", f"{st['link']}  backlog {st['backlog']}  oldest {local(st['oldest_pending_at'])}"),
    ]
    if sync.get("last_success_at"):
        rows.append(("last sent", local(sync["last_success_at"])))
    rows.append(("queue", "  ".join(f"{k} {v}" for k, v in st.get("queue", {}).items())))
    if st.get("last_error"):
        rows.append(("last error", _last_error(st)))
    rows.append(
        (
            "scans",
            f"{st['scanned']} scanned, {st['accepted']} accepted, "
            f"{sum(refused.values())} refused" + (f" ({cell(refused)})" if refused else ""),
        )
    )
    rows += [
        (
            "open bill",
            f"{b['number']}  type {b['type']}  {b['action']}  since {local(b['opened_at'])}",
        )
        for b in st.get("bills", [])
    ]
    last_scan = st.get("last_scan_at", {})
    for d in st.get("devices", []):
        state = "connected" if d.get("connected") else "offline"
        seen = d.get("last_scan_at") or last_scan.get(d.get("source"))
        rows.append(
            (
                "device",
                f"{d.get('source')}  {d.get('device')}  {d.get('model') or '-'}  {state}"
                + (f"  last scan {local(seen)}" if seen else ""),
            )
        )
    for t in st.get("tcp", []):
        held_off = ", ".join(
            f"{t[k]} {k.replace('_', ' ')}"
            for k in (
                "refused",
                "evicted",
                "idle_closed",
                "read_timeouts",
                "write_timeouts",
                "slowed",
            )
            if t.get(k)
        )
        rows.append(
            (
                "tcp",
                f"{t['source']}  {t['listen']}  {t['clients']} connected, "
                f"{t['connections']} since start" + (f"  ({held_off})" if held_off else ""),
            )
        )
    if st.get("refusals_dropped"):
        rows.append(
            (
                "unrecorded",
                f"{st['refusals_dropped']} refused scans counted but not written "
                "(free space below twice outbox.min_free_mb)",
            )
        )
    hardware = {d.get("source") for d in st.get("devices", [])}
    rows += [
        ("source", name + (f"  last scan {local(last_scan[name])}" if last_scan.get(name) else ""))
        for name in st.get("sources", [])
        if name not in hardware
    ]
    rows += [("ALARM", alarm) for alarm in st.get("alarms", [])]
    print_fields(rows)
    return 0


def _last_error(st: dict[str, Any]) -> str:
    """The last send error, when it happened (local time), and whether it still holds."""
    at = local(st.get("last_error_at"))
    if st.get("last_error_current"):
        return f"{st['last_error']}  (at {at}, current)"
    return f"{st['last_error']}  (at {at}, past: a later batch was delivered)"


# -- bills -----------------------------------------------------------------------


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
    bill = _call(
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
    bill = _call(args, "bill.close", number=args.number)
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
    r = _call(args, "bill.undo", number=args.number, reason=args.reason, origin="cli")
    _print_removal(args, r)
    return 0


def cmd_bill_remove(args: argparse.Namespace) -> int:
    """Take one scan off a bill."""
    r = _call(
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
    try:
        text = Path(file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScannerAgentError(f"Failed to read {file!r}: {exc}") from exc
    return _call(
        args, "bill.import", number=number, csv=text, kind="packs" if packs else "expected"
    )


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
    view = _call(args, "bill.show", number=args.number, scans=args.scans)
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
                _scan_result(s),
                why.get(s["seq"]) if s["state"] == "removed" else s["reason"],
            )
            for s in view["scans"]
        ],
        empty="no scans on this bill",
    )
    return 0


def _scan_result(scan: dict[str, Any]) -> str:
    """A scan's row state, with the service's verdict for a delivered one (``accepted``/``duplicate``)."""
    if scan["state"] == "delivered" and scan.get("result"):
        return str(scan["result"])
    return str(scan["state"])


def cmd_bill_list(args: argparse.Namespace) -> int:
    """List bills, newest first."""
    # One more than asked for: whether the limit left any out.
    bills = _call(args, "bill.list", state=args.state, limit=args.limit + 1)
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


def cmd_lookup(args: argparse.Namespace) -> int:
    """A code's history: scans on every bill, refusals and removals."""
    h = _call(args, "lookup", code=args.code)
    if args.json:
        print_json(h)
        return 0
    print(f"{h['code']}  {h['name'] or ''}".rstrip())
    rows = [
        (s["scanned_at"], s["action"], s["bill"], _scan_result(s), s["reason"]) for s in h["scans"]
    ]
    rows += [
        (r["scanned_at"], "refused", None, r.get("verdict"), _refusal(r)) for r in h["refused"]
    ]
    rows += [(r["removed_at"], "removal", r["bill"], "removed", r["reason"]) for r in h["removals"]]
    rows.sort(key=lambda row: str(row[0]))
    print_table(
        ["at", "what", "bill", "result", "reason"],
        [(local(at), *rest) for at, *rest in rows],
        empty="never scanned here",
    )
    return 0


def _refusal(r: dict[str, Any]) -> str:
    """A refusal's reason, with how often and when last for an aggregate of several."""
    if int(r.get("count") or 1) > 1:
        return f"{r['reason']} (x{r['count']}, last {local(r.get('last_at'))})"
    return str(r["reason"])


# -- bill export (offline: reads the outbox file) ------------------------------------


def _outbox_path(args: argparse.Namespace) -> Path:
    from scanner_agent.cli.app import outbox_file

    return outbox_file(args)


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
    catalog_csv = None
    if args.catalog:
        try:
            catalog_csv = Path(args.catalog).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScannerAgentError(f"Failed to read {args.catalog!r}: {exc}") from exc
    doc = export_nhsa(
        _outbox_path(args),
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
    from scanner_agent.outbox import Outbox

    with Outbox.open_readonly(_outbox_path(args)) as outbox:
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
    from scanner_agent.outbox import Outbox
    from scanner_agent.sinks.alihealth import platform_failures

    with Outbox.open_readonly(_outbox_path(args)) as outbox:
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


def cmd_bill_ack(args: argparse.Namespace) -> int:
    """Acknowledge the platform's processing failures of a bill: its alarm goes."""
    r = _call(args, "bill.ack", number=args.number, note=args.note)
    if args.json:
        print_json(r)
    else:
        numbers = ", ".join(c["number"] for c in r["cleared"])
        print(f"acknowledged {r['bill']}: {numbers}")
    return 0


# -- tui ---------------------------------------------------------------------------


def cmd_tui(args: argparse.Namespace) -> int:
    """Run the dispatch terminal (Textual) attached to the daemon, or with one embedded."""
    from scanner_agent.roles import role_hint, role_problem

    problem = role_problem("tui")
    if problem is not None:  # the tui extra is not installed
        raise ScannerAgentError(f"Failed to start the TUI: {problem}: {role_hint('tui')}")
    from scanner_agent.tui import run_tui

    if args.embedded:
        cfg = load_config(args.config or DEFAULT_CONFIG_PATH)
        return run_tui(None, config=cfg, bell=args.bell)
    return run_tui(socket_path(args), bell=args.bell)


# -- wiring -------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser, *, with_json: bool = True) -> None:
    p.add_argument("--config", "-c", help=f"config file (default {DEFAULT_CONFIG_PATH})")
    p.add_argument("--socket", help="control socket (default: control.socket of the config)")
    if with_json:
        json_flag(p)


def register(add: AddCommand) -> None:
    """Add ``status``, ``bill`` (``bill export``, ``history`` and ``failed`` read the outbox
    file), ``lookup`` and ``tui``."""
    p = add("status", cmd_status, "Show the running agent's status (over its control socket).")
    _common(p)

    p = add("lookup", cmd_lookup, "Show a code's history: scans, refusals, removals.")
    _common(p)
    p.add_argument("code", help="the code (as scanned or normalised)")

    p = add("tui", cmd_tui, "Run the dispatch terminal attached to the running agent.")
    _common(p, with_json=False)
    p.add_argument(
        "--embedded", action="store_true", help="run the agent inside the TUI (needs --config)"
    )
    p.add_argument("--bell", action="store_true", help="ring the terminal bell on a bad scan")

    bill = add(
        "bill", lambda a: 2, "Bills (出入库单据): open, close, undo, import, show, history, export."
    )
    sub = bill.add_subparsers(dest="bill_command", required=True, metavar="BILL_COMMAND")

    def badd(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        p = add_command(sub, name, help_text)
        p.set_defaults(handler=handler)
        _common(p)
        return p

    p = badd("open", cmd_bill_open, "Open a bill; scans for its action go to it until closed.")
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

    p = badd("close", cmd_bill_close, "Close a bill and hand its scans to sync.")
    p.add_argument("number", nargs="?", help="bill number (default: the open one)")

    p = badd("undo", cmd_bill_undo, "Take the last scan off an open bill.")
    p.add_argument("number", nargs="?", help="bill number (default: the open one)")
    p.add_argument("--reason", "-r", required=True, help="why (kept in the bill's log)")

    p = badd("remove", cmd_bill_remove, "Take one scan off an open bill.")
    p.add_argument("number", nargs="?", help="bill number (default: the open one)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seq", type=int, help="the scan's sequence number")
    which.add_argument("--code", help="the scanned code")
    p.add_argument("--reason", "-r", required=True, help="why (kept in the bill's log)")

    p = badd("import", cmd_bill_import, "Import an expected list (or --packs ratios) from CSV.")
    p.add_argument("file", help="CSV file (UTF-8)")
    p.add_argument("--bill", dest="number", help="bill number (default: the open one)")
    p.add_argument("--packs", action="store_true", help="the file is a pack-ratio table")

    p = badd("show", cmd_bill_show, "Show a bill's progress and latest scans.")
    p.add_argument("number", nargs="?", help="bill number (default: the open one)")
    p.add_argument("--scans", type=int, default=20, help="latest scans to list (default 20)")

    from scanner_agent.outbox import BillState

    p = badd("list", cmd_bill_list, "List bills, newest first.")
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
    p.add_argument("--config", "-c", help=f"config file (default {DEFAULT_CONFIG_PATH})")
    p.add_argument("--outbox", help="outbox file (default: outbox.path from the config)")
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

    p = badd("ack", cmd_bill_ack, "Acknowledge the platform's processing failure of a bill.")
    p.add_argument("number", help="bill number (as scanned, not a sub-bill)")
    p.add_argument("--note", "-n", default="", help="what was done (kept in the bill's log)")

    def offline(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        p = add_command(sub, name, help_text, description=help_text + " Reads the outbox file.")
        p.set_defaults(handler=handler)
        p.add_argument("--config", "-c", help=f"config file (default {DEFAULT_CONFIG_PATH})")
        p.add_argument("--outbox", help="outbox file (default: outbox.path from the config)")
        json_flag(p, "print JSON (a list: one object per line)")
        return p

    p = offline(
        "history",
        cmd_bill_history,
        "Print a bill's history: open, imports, removals, close, uploads, platform status.",
    )
    p.add_argument("number", help="bill number")

    offline(
        "failed",
        cmd_bill_failed,
        "List bills the trace platform failed to process (码上放心 deal_status 4), "
        "not yet acknowledged.",
    )

    p = add_command(sub, "types", "List the platform's bill types.")
    p.set_defaults(handler=cmd_bill_types)
    json_flag(p, "print one JSON object per type (JSON Lines)")
