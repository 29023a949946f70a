"""``scanner-agent queue stats|ls|retry|export|salvage``: the outbox file, read (or repaired) offline.

Each command opens the outbox file itself (:func:`~scanner_agent.cli._common.read_outbox`:
read-only, so looking at a live daemon's file never changes it) and calls one
:class:`~scanner_agent.outbox.Outbox` method.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scanner_agent.cli._common import AddCommand, Handler, open_outbox, outbox_args, read_outbox
from scanner_agent.cli.output import (
    EXIT_OK,
    EXIT_PROBLEMS,
    add_command,
    json_flag,
    note,
    plural,
    print_fields,
    print_json,
    print_json_lines,
    print_table,
    whole_number,
)
from scanner_agent.kernel import ScannerAgentError, UsageError
from scanner_agent.times import age, local


def _age_s(timestamp: str | None, now: datetime) -> float | None:
    """Seconds from an RFC 3339 ``scanned_at`` to ``now`` (negative: a clock ahead of ours)."""
    from scanner_agent.times import parse_time

    at = parse_time(timestamp)
    return None if at is None else round((now - at).total_seconds(), 3)


def cmd_queue_stats(args: argparse.Namespace) -> int:
    """Counts per state, oldest pending and its age, refusals by reason, file sizes."""
    with read_outbox(args) as outbox:
        stats = outbox.stats()
        reasons = outbox.reject_reasons()
    seconds = _age_s(stats.oldest_pending_at, datetime.now(UTC))
    data = {
        **dataclasses.asdict(stats),
        "backlog": stats.backlog,
        "oldest_pending_age_s": seconds,
        "reject_reasons": reasons,
    }
    if args.json:
        print_json(data)
        return 0
    # One line per row state (every state, zeros too: each row is in exactly one).
    rows: list[tuple[str, Any]] = list(stats.counts.items())
    rows.append(("backlog", stats.backlog))
    oldest = local(stats.oldest_pending_at)
    rows.append(("oldest", oldest + (f" ({age(seconds)})" if seconds is not None else "")))
    rows.append(("refused", stats.rejects))
    rows += [(f"  {reason}", n) for reason, n in reasons.items()]
    rows.append(
        (
            "file",
            f"{stats.file_bytes} bytes (WAL {stats.wal_bytes}), schema v{stats.schema_version}",
        )
    )
    print_fields(rows)
    return 0


def cmd_queue_ls(args: argparse.Namespace) -> int:
    """List outbox rows, oldest first; say how many the limit left out."""
    filters = {"state": args.state, "code": args.code, "bill": args.bill}
    with read_outbox(args) as outbox:
        rows = outbox.rows(**filters, limit=args.limit)
        total = outbox.count_rows(**filters) if len(rows) >= args.limit else len(rows)
    if args.json:
        print_json_lines(dataclasses.asdict(r) for r in rows)
    elif rows or not total:
        print_table(
            ["seq", "state", "scheme", "code", "bill", "scanned at", "reason"],
            [
                (r.seq, r.state, r.scheme, r.code, r.bill, local(r.scanned_at), r.reason)
                for r in rows
            ],
            empty="no rows" + (" match" if any(filters.values()) else " in the outbox"),
        )
    if total > len(rows):
        note(
            f"showing the first {plural(len(rows), 'row')} of {total}: "
            f"{total - len(rows)} left out (--limit N shows more)"
        )
    return 0


def cmd_queue_retry(args: argparse.Namespace) -> int:
    """Send dead letters again."""
    with open_outbox(args) as outbox:
        n = outbox.requeue_rejected(args.seq or None)
    if args.json:
        print_json({"requeued": n})
    elif n:
        print(f"{plural(n, 'row')} back to pending")
    else:
        print("no rejected rows" + (" with those seq numbers" if args.seq else "") + " to retry")
    return 0


def cmd_queue_export(args: argparse.Namespace) -> int:
    """Export every readable row (JSON lines or CSV) for audit; report the damaged ones.

    Each row is decoded and checksum-verified alone, so a damaged row never
    stops the export: it is left out of the output and named on stderr (seq,
    problem, its bytes in hex), and the exit status is 3 (ran, found problems).
    ``--json`` is ``--format jsonl``, the default.
    """
    from scanner_agent.outbox import OutboxRow

    if args.json and args.format == "csv":
        raise UsageError("queue export: --json and --format csv contradict each other")
    fields = [f.name for f in dataclasses.fields(OutboxRow)]
    writer = csv.DictWriter(sys.stdout, fieldnames=fields) if args.format == "csv" else None
    damaged = exported = 0
    with read_outbox(args) as outbox:
        if writer:
            writer.writeheader()
        for rows, bad in outbox.export_pages(page=5000):
            exported += len(rows)
            for r in rows:
                d = dataclasses.asdict(r)
                if writer:
                    writer.writerow(d)
                else:
                    print_json(d)
            for b in bad:
                note(f"damaged row seq {b.seq} not exported: {b.problem}; bytes {b.content.hex()}")
            damaged += len(bad)
    if damaged:
        note(
            f"{plural(damaged, 'damaged row')} not exported (quarantined or failing their "
            "checksum); see docs/operations.md, 'Damaged outbox'"
        )
        return EXIT_PROBLEMS
    if not exported:
        note("no rows to export: the outbox is empty")
    return EXIT_OK


def cmd_queue_salvage(args: argparse.Namespace) -> int:
    """Recover the owed scans of a damaged outbox file (never written) into the live outbox.

    Exit status 0 when every row read back intact, 3 when damaged rows or
    unreadable stretches were found (the report names them), 1 or 2 on error.
    """
    source = Path(args.file)
    if not source.is_file():
        raise UsageError(f"Failed to salvage {str(source)!r}: no such file")
    with open_outbox(args) as outbox:
        try:
            report = outbox.salvage(source, dry_run=args.dry_run)
        except ValueError as exc:
            raise ScannerAgentError(f"Failed to salvage {str(source)!r}: {exc}") from exc
    if args.json:
        print_json(report.as_dict())
    else:
        verb = "would recover" if args.dry_run else "recovered"
        print(f"{source}: {verb} {plural(report.recovered, 'scan')} into {outbox.path}")
        print(
            f"  rows read        {report.rows_read} ({report.from_pages} from the leaf pages; "
            f"{report.pages_unverified} more there without checksum, not taken)"
        )
        print(
            f"  owed             {report.owed} (already held: {report.already_held}, "
            f"without checksum: {report.unverified})"
        )
        print(f"  settled          {report.settled}   removed {report.removed}")
        print(f"  damaged rows     {len(report.damaged)}")
        for d in report.damaged:
            print(f"    seq {d['seq']}: {d['problem']}; bytes {d['content_hex']}")
        print(f"  unreadable       {len(report.unreadable)}")
        for u in report.unreadable:
            print(f"    after seq {u['after_seq']} (resumed at {u['resumed_at']}): {u['error']}")
    return EXIT_PROBLEMS if report.damaged or report.unreadable else EXIT_OK


def register(add: AddCommand) -> None:
    """Add ``queue`` and its subcommands."""
    from scanner_agent.outbox import RowState

    q = add("queue", lambda a: 2, "Inspect and manage the outbox.")
    qsub = q.add_subparsers(dest="queue_command", required=True, metavar="QUEUE_COMMAND")

    def qadd(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = add_command(qsub, name, help_text)
        p.set_defaults(handler=handler)
        outbox_args(p)
        return p

    p = qadd(
        "stats", cmd_queue_stats, "Rows per state, backlog, oldest pending, file and WAL size."
    )
    json_flag(p)
    p = qadd(
        "ls", cmd_queue_ls, "List outbox rows, oldest first (stderr says how many were left out)."
    )
    p.add_argument(
        "--state",
        choices=[s.value for s in RowState],
        help="only rows in this state (held: its bill is open; removed: taken off its bill; quarantined: damaged on disk)",
    )
    p.add_argument("--code", help="only rows of this code (as stored, normalised)")
    p.add_argument("--bill", help="only rows of this bill")
    p.add_argument(
        "--limit",
        type=whole_number,
        default=100,
        metavar="N",
        help="list at most N rows, the oldest first (default 100); stderr says how many "
        "more there are",
    )
    json_flag(p, "print one JSON object per row (JSON Lines)")
    p = qadd("retry", cmd_queue_retry, "Move dead letters (rejected rows) back to pending.")
    p.add_argument("--seq", type=int, action="append", help="only this row (repeatable)")
    json_flag(p, 'print {"requeued": N}')
    p = qadd("export", cmd_queue_export, "Export every row for audit (exit 3: damaged rows).")
    p.add_argument(
        "--format", choices=["jsonl", "csv"], default="jsonl", help="default jsonl: JSON Lines"
    )
    json_flag(p, "JSON Lines (the same as --format jsonl, the default)")
    p = qadd(
        "salvage",
        cmd_queue_salvage,
        "Recover the readable scans still owed from a damaged outbox file into the live one.",
    )
    p.add_argument("file", help="the damaged file (e.g. outbox.db.corrupt-<time>); only read")
    p.add_argument("--dry-run", action="store_true", help="count what would be recovered")
    json_flag(p, "print the report as JSON")
