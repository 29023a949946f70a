"""``scanner-agent``: one console script, a subcommand per job.

The CLI is thin (sqlite-utils' rule): each command parses its arguments,
calls one library function and prints the result through
:mod:`scanner_agent.cli.output` (tables for people, ``--json`` for programs);
a :class:`ScannerAgentError` becomes a message on stderr and the documented
exit status (:data:`~scanner_agent.cli.output.EXIT_CODES`), so piped JSON
output is never mixed with errors.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scanner_agent import __version__
from scanner_agent.cli.output import (
    EPILOG,
    EXIT_OK,
    EXIT_PROBLEMS,
    add_command,
    exit_code,
    json_flag,
    note,
    plural,
    print_fields,
    print_json,
    print_json_lines,
    print_table,
    whole_number,
)
from scanner_agent.config import (
    DEFAULT_CONFIG_PATH,
    AgentConfig,
    check_secret,
    load_config,
    read_token,
)
from scanner_agent.install import SERVICE_USER
from scanner_agent.kernel import ConfigError, ScannerAgentError, UsageError
from scanner_agent.logs import for_stderr
from scanner_agent.preflight import Refusal, RunAs, check_user, preflight
from scanner_agent.times import age, local

PRIVATE_UMASK = 0o027
"""``run``'s umask: files at most 0640, directories 0750 (the unit's ``UMask=`` too)."""

Handler = Callable[[argparse.Namespace], int]
AddCommand = Callable[[str, Handler, str], argparse.ArgumentParser]
"""``add(name, handler, help)``: registers a subcommand and returns its parser."""

EXTENSIONS: tuple[str, ...] = (
    "scanner_agent.cli.hw",
    "scanner_agent.cli.camera",
    "scanner_agent.cli.bills",
    "scanner_agent.cli.ops",
)
"""Modules whose ``register(add: AddCommand)`` adds subcommands (hardware, bills, install...)."""


# -- parse ---------------------------------------------------------------------


def _inputs(codes: Sequence[str]) -> Iterable[bytes]:
    if codes:
        for c in codes:
            yield c.encode("utf-8", "surrogateescape")
        return
    yield from sys.stdin.buffer


def cmd_parse(args: argparse.Namespace) -> int:
    """Print one JSON object per input code; exit 3 when any of them is not a valid code."""
    from scanner_agent.codes import parse_scan

    invalid = 0
    for data in _inputs(args.codes):
        if not data.strip(b"\r\n"):
            continue
        result = parse_scan(data)
        invalid += not result.valid
        print_json(result.to_dict())
    return EXIT_PROBLEMS if invalid else EXIT_OK


# -- run -----------------------------------------------------------------------


def _load(args: argparse.Namespace) -> AgentConfig:
    path = Path(args.config) if args.config else DEFAULT_CONFIG_PATH
    return load_config(path)


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
    from scanner_agent.logs import setup_logging

    cfg = _load(args)
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
    cfg = _load(args)
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


# -- demo / trace-server -------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the end-to-end demo on loopback."""
    from scanner_agent.lab.demo import main as demo_main
    from scanner_agent.logs import setup_logging

    setup_logging("error", json_lines=False)
    return demo_main(args.count, keep=args.keep, as_json=args.json, protocol=args.protocol)


def cmd_trace_server(args: argparse.Namespace) -> int:
    """Run the reference trace service."""
    from scanner_agent.asgi import ServerStartError
    from scanner_agent.logs import setup_logging
    from scanner_agent.traceserver import serve

    setup_logging("info")
    if args.token_file or args.token_env:
        # The agent's own credential rule: one line of printable ASCII, not world-readable.
        token = read_token(args.token_file or "", args.token_env or "", "trace-server")
    elif args.token:
        print(
            "scanner-agent: warning: --token shows the token to every local user (ps, "
            "/proc/PID/cmdline); use --token-file or --token-env",
            file=sys.stderr,
        )
        token = check_secret(args.token.encode(), "trace-server.token", "--token")
    else:
        raise ScannerAgentError("trace-server: give --token-file or --token-env")
    try:
        serve(args.listen, args.db, token)
    except ServerStartError as exc:  # a busy or foreign address: one line, as `run` says it
        raise ScannerAgentError(str(exc)) from exc
    return 0


# -- queue ---------------------------------------------------------------------


def outbox_file(args: argparse.Namespace) -> Path:
    """``--outbox``, else ``outbox.path`` of the config; a usage error when there is no such file.

    Checked before anything opens it, so a command that only looks never
    creates an outbox where there was none.
    """
    path = Path(args.outbox or _load(args).outbox.path)
    if not path.exists():
        raise UsageError(f"Failed to open outbox {str(path)!r}: no such file")
    return path


def _open_outbox(args: argparse.Namespace) -> Any:
    """The outbox opened for writing (``queue retry``): the daemon's own open, migrations too."""
    from scanner_agent.outbox import Outbox

    return Outbox.open(outbox_file(args))


def _read_outbox(args: argparse.Namespace) -> Any:
    """The outbox opened read-only: looking at a live daemon's file must never change it."""
    from scanner_agent.outbox import Outbox

    return Outbox.open_readonly(outbox_file(args))


def _age_s(timestamp: str | None, now: datetime) -> float | None:
    """Seconds from an RFC 3339 ``scanned_at`` to ``now`` (negative: a clock ahead of ours)."""
    from scanner_agent.times import parse_time

    at = parse_time(timestamp)
    return None if at is None else round((now - at).total_seconds(), 3)


def cmd_queue_stats(args: argparse.Namespace) -> int:
    """Counts per state, oldest pending and its age, refusals by reason, file sizes."""
    with _read_outbox(args) as outbox:
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
    with _read_outbox(args) as outbox:
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
    with _open_outbox(args) as outbox:
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
    with _read_outbox(args) as outbox:
        if writer:
            writer.writeheader()
        after = 0
        while True:
            rows, bad = outbox.export_page(after_seq=after, limit=5000)
            if not rows and not bad:
                break
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
            after = max(x.seq for x in (*rows, *bad))
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
    with _open_outbox(args) as outbox:
        try:
            report = outbox.salvage(source, dry_run=args.dry_run)
        except ValueError as exc:
            raise ScannerAgentError(f"Failed to salvage {str(source)!r}: {exc}") from exc
    if args.json:
        print_json(report.as_dict())
    else:
        verb = "would recover" if args.dry_run else "recovered"
        print(f"{source}: {verb} {plural(report.recovered, 'scan')} into {outbox.path}")
        print(f"  rows read        {report.rows_read}")
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


# -- wiring --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs test to list commands)."""
    parser = argparse.ArgumentParser(
        prog="scanner-agent",
        description="Edge agent for barcode scanners: read, validate, keep durably, sync.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"scanner-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = add_command(sub, name, help_text)
        p.set_defaults(handler=handler)
        return p

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", "-c", help=f"config file (default {DEFAULT_CONFIG_PATH})")

    p = add(
        "parse",
        cmd_parse,
        "Parse codes (arguments or stdin lines) and print one JSON object per code; "
        "exit 3 when any code is invalid.",
    )
    p.add_argument("codes", nargs="*", help="codes to parse; read lines from stdin when none")
    json_flag(p, "print JSON (the default: parse always prints one JSON object per code)")

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

    p = add("demo", cmd_demo, "Run the end-to-end demo on loopback (no hardware, no network).")
    p.add_argument("--count", type=int, default=300, help="simulated scans (default 300)")
    p.add_argument("--keep", metavar="DIR", help="keep the outbox and service database in DIR")
    json_flag(p, "print the summary as JSON")
    p.add_argument(
        "--protocol",
        choices=["trace-api", "alihealth", "epcis"],
        default="trace-api",
        help="sync to the reference trace service (default), the 码上放心 gateway emulator "
        "or the EPCIS 2.0 repository emulator",
    )

    p = add("trace-server", cmd_trace_server, "Run the reference trace service (Trace API v1).")
    p.add_argument("--listen", default="127.0.0.1:8900", help="host:port (default 127.0.0.1:8900)")
    p.add_argument("--db", required=True, help="SQLite file of the service")
    tokens = p.add_mutually_exclusive_group()
    tokens.add_argument(
        "--token-file", help="file holding the bearer token clients must send (0600/0640)"
    )
    tokens.add_argument("--token-env", help="name of an environment variable holding it")
    tokens.add_argument(
        "--token", default="", help="the token itself (shown in `ps` to every user; avoid)"
    )

    q = add("queue", lambda a: 2, "Inspect and manage the outbox.")
    qsub = q.add_subparsers(dest="queue_command", required=True, metavar="QUEUE_COMMAND")

    def qadd(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = add_command(qsub, name, help_text)
        p.set_defaults(handler=handler)
        config_arg(p)
        p.add_argument("--outbox", help="outbox file (default: outbox.path from the config)")
        return p

    p = qadd(
        "stats", cmd_queue_stats, "Rows per state, backlog, oldest pending, file and WAL size."
    )
    json_flag(p)
    from scanner_agent.outbox import RowState

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

    # Feature modules add their own commands; each exposes register(add) -> None.
    for module in EXTENSIONS:
        importlib.import_module(module).register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ScannerAgentError as exc:
        print(for_stderr(f"scanner-agent: error: {exc}", logging.ERROR), file=sys.stderr)
        if isinstance(exc, Refusal) and exc.hint:
            print(for_stderr(f"scanner-agent: hint: {exc.hint}", logging.ERROR), file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
