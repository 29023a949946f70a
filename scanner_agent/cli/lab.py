"""``scanner-agent demo`` and ``trace-server``: the lab, the product's one door to it.

Nothing else in the CLI imports :mod:`scanner_agent.lab` or the reference
trace service, and these commands import them only when they run
(``tests/architecture/test_layers.py``: the DOORS).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from scanner_agent.cli._common import AddCommand
from scanner_agent.cli.output import json_flag, print_json
from scanner_agent.config import check_secret, read_token
from scanner_agent.kernel import ScannerAgentError


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the end-to-end demo on loopback; exit 0 when every accepted scan was settled and
    none was refused for a reason the agent knew when it ACKed it (the summary's verdict)."""
    from scanner_agent.lab.demo import demo, format_summary
    from scanner_agent.ops.logs import setup_logging

    setup_logging("error", json_lines=False)
    live = sys.stdout.isatty() and not args.json
    summary = demo(args.count, keep=args.keep, live=live, protocol=args.protocol)
    if args.json:
        print_json({**dataclasses.asdict(summary), "ok": summary.ok, "verdict": summary.verdict})
    else:
        print(format_summary(summary))
    return summary.exit_status


def _token(args: argparse.Namespace) -> str | None:
    """The shared bearer token, by the agent's own credential rule; None without one (each
    dock then sends its own token, ``trace-server token add DEVICE``)."""
    if args.token_file or args.token_env:
        # One line of printable ASCII, not world-readable.
        return read_token(args.token_file or "", args.token_env or "", "trace-server")
    if args.token:
        print(
            "scanner-agent: warning: --token shows the token to every local user (ps, "
            "/proc/PID/cmdline); use --token-file or --token-env",
            file=sys.stderr,
        )
        return check_secret(args.token.encode(), "trace-server.token", "--token")
    return None  # only per-dock tokens


def cmd_trace_server(args: argparse.Namespace) -> int:
    """Run the trace service, or (``migrate``) bring its PostgreSQL schema up to date."""
    from scanner_agent.ops.logs import setup_logging
    from scanner_agent.traceserver import database_errors

    setup_logging("info")
    with database_errors(args.db):  # one error line, never a driver's traceback
        return _trace_server(args)


def _trace_server(args: argparse.Namespace) -> int:
    """``serve`` (the default), ``migrate`` or ``token``."""
    from scanner_agent.asgi import ServerStartError
    from scanner_agent.traceserver import serve

    if args.action == "migrate":
        return _migrate(args.db)
    if args.action == "token":
        return _token_command(args.db, args.words)
    if args.words:
        raise ScannerAgentError(f"trace-server: unexpected arguments: {' '.join(args.words)}")
    token = _token(args)
    try:
        if args.workers == 1:
            serve(args.listen, args.db, token)
        else:
            from scanner_agent.traceserver import WorkerSettings, serve_workers

            serve_workers(args.listen, WorkerSettings(args.db, token), args.workers)
    except ValueError as exc:
        raise ScannerAgentError(f"trace-server: {exc}") from exc
    except ServerStartError as exc:  # a busy or foreign address: one line, as `run` says it
        raise ScannerAgentError(str(exc)) from exc
    return 0


def _token_command(db: str, words: list[str]) -> int:
    """``token add DEVICE`` (the token is printed once, to stdout), ``token revoke ID``,
    ``token list`` (ids and devices, never a secret); on either store."""
    from scanner_agent.traceserver import issue_token, list_tokens, revoke_token

    try:
        match words:
            case ["add", device]:
                issued = issue_token(db, device)
                print(f"trace-server: token {issued.token_id} for {device}:", file=sys.stderr)
                print(issued.token)
            case ["revoke", token_id]:
                if not revoke_token(db, token_id):
                    raise ScannerAgentError(f"trace-server token: no live token {token_id}")
                print(f"trace-server: token {token_id} revoked")
            case ["list"]:
                for token_id, device, created, revoked in list_tokens(db):
                    print(f"{token_id}  {device}  issued {created}  revoked {revoked or '-'}")
            case _:
                raise ScannerAgentError(
                    "trace-server token: use `token add DEVICE`, `token revoke ID` or `token list`"
                )
    except FileNotFoundError as exc:  # an SQLite --db that does not exist
        raise ScannerAgentError(f"trace-server token: {exc}") from exc
    return 0


def _migrate(db: str) -> int:
    """Apply the migrations the database lacks; say which (the URI is never printed)."""
    from scanner_agent.traceserver import is_postgres, migrate

    if not is_postgres(db):
        raise ScannerAgentError(
            "trace-server migrate: --db must be a postgresql:// URI (an SQLite file is "
            "created and kept current by the server itself)"
        )
    applied = migrate(db)
    if applied:
        print(f"trace-server: migrations applied: {', '.join(map(str, applied))}")
    else:
        print("trace-server: schema already current")
    return 0


def register(add: AddCommand) -> None:
    """Add ``demo`` and ``trace-server``."""
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

    p = add("trace-server", cmd_trace_server, "Run the trace service (Trace API v1).")
    p.add_argument(
        "action",
        nargs="?",
        choices=["serve", "migrate", "token"],
        default="serve",
        help="serve (default); migrate: apply the PostgreSQL schema migrations --db lacks "
        "and create the coming months' partitions; token add DEVICE | revoke ID | list: "
        "one credential per dock",
    )
    p.add_argument("words", nargs="*", help=argparse.SUPPRESS)
    p.add_argument("--listen", default="127.0.0.1:8900", help="host:port (default 127.0.0.1:8900)")
    p.add_argument(
        "--db",
        required=True,
        help="SQLite file, or postgresql://... URI (run `trace-server migrate` first)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes on the one address (PostgreSQL only; they keep no state: "
        "any may answer any request; default 1)",
    )
    tokens = p.add_mutually_exclusive_group()
    tokens.add_argument(
        "--token-file", help="file holding the bearer token clients must send (0600/0640)"
    )
    tokens.add_argument("--token-env", help="name of an environment variable holding it")
    tokens.add_argument(
        "--token", default="", help="the token itself (shown in `ps` to every user; avoid)"
    )
