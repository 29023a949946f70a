"""``scanner-agent status``, ``lookup`` and ``tui``: ask the running daemon.

Every command here is a thin call over the control socket
(:mod:`scanner_agent.control`); the daemon does the work, so what the CLI
shows and what the TUI shows are the same thing.  Textual is only imported
by ``tui``.
"""

from __future__ import annotations

import argparse
from typing import Any

from scanner_agent.cli._common import (
    AddCommand,
    call,
    config_arg,
    control_args,
    scan_result,
    socket_path,
)
from scanner_agent.cli.output import cell, print_fields, print_json, print_table
from scanner_agent.config import DEFAULT_CONFIG_PATH, load_config
from scanner_agent.control import AgentStatus
from scanner_agent.kernel import ScannerAgentError
from scanner_agent.times import local

Rows = list[tuple[str, Any]]


# -- status ----------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    """Print the daemon's status: ``--json`` as the agent sent it, else read as
    :class:`~scanner_agent.control.AgentStatus` and shown one field per line."""
    reply = call(args, "status")
    if args.json:
        print_json(reply)
        return 0
    st = AgentStatus.from_json(reply)
    print_fields(
        _agent_rows(st)
        + _device_rows(st)
        + _tcp_rows(st)
        + _unrecorded_rows(st)
        + _source_rows(st)
        + [("ALARM", alarm) for alarm in st.alarms]
    )
    return 0


def _agent_rows(st: AgentStatus) -> Rows:
    """The agent, its link and queue, the last error, the scan counts and the open bills."""
    rows: Rows = [
        ("agent", f"{st.device_id}  {st.state}  up {st.uptime_s} s"),
        ("link", f"{st.link}  backlog {st.backlog}  oldest {local(st.oldest_pending_at)}"),
    ]
    if st.sync is not None and st.sync.last_success_at:
        rows.append(("last sent", local(st.sync.last_success_at)))
    rows.append(("queue", "  ".join(f"{k} {v}" for k, v in st.queue.items())))
    if st.last_error:
        rows.append(("last error", _last_error(st)))
    refused = dict(st.refused)
    rows.append(
        (
            "scans",
            f"{st.scanned} scanned, {st.accepted} accepted, "
            f"{sum(refused.values())} refused" + (f" ({cell(refused)})" if refused else ""),
        )
    )
    rows += [
        ("open bill", f"{b.number}  type {b.type}  {b.action}  since {local(b.opened_at)}")
        for b in st.bills
    ]
    return rows


def _device_rows(st: AgentStatus) -> Rows:
    rows: Rows = []
    for d in st.devices:
        state = "connected" if d.connected else "offline"
        seen = d.last_scan_at or st.last_scan_at.get(d.source)
        rows.append(
            (
                "device",
                f"{d.source}  {d.device}  {d.model or '-'}  {state}"
                + (f"  last scan {local(seen)}" if seen else ""),
            )
        )
    return rows


TCP_HELD_OFF = ("refused", "evicted", "idle_closed", "read_timeouts", "write_timeouts", "slowed")
"""A TCP source's counters of clients held off, shown when not zero."""


def _tcp_rows(st: AgentStatus) -> Rows:
    rows: Rows = []
    for t in st.tcp:
        n = t.counters
        held_off = ", ".join(f"{n[k]} {k.replace('_', ' ')}" for k in TCP_HELD_OFF if n.get(k))
        rows.append(
            (
                "tcp",
                f"{t.source}  {t.listen}  {t.clients} connected, "
                f"{n.get('connections', 0)} since start" + (f"  ({held_off})" if held_off else ""),
            )
        )
    return rows


def _unrecorded_rows(st: AgentStatus) -> Rows:
    if not st.refusals_dropped:
        return []
    return [
        (
            "unrecorded",
            f"{st.refusals_dropped} refused scans counted but not written "
            "(free space below twice outbox.min_free_mb)",
        )
    ]


def _source_rows(st: AgentStatus) -> Rows:
    """The sources that are not hardware devices (those have a ``device`` line)."""
    hardware = {d.source for d in st.devices}
    return [
        (
            "source",
            name
            + (f"  last scan {local(st.last_scan_at[name])}" if st.last_scan_at.get(name) else ""),
        )
        for name in st.sources
        if name not in hardware
    ]


def _last_error(st: AgentStatus) -> str:
    """The last send error, when it happened (local time), and whether it still holds."""
    at = local(st.last_error_at)
    if st.last_error_current:
        return f"{st.last_error}  (at {at}, current)"
    return f"{st.last_error}  (at {at}, past: a later batch was delivered)"


# -- lookup ------------------------------------------------------------------------


def cmd_lookup(args: argparse.Namespace) -> int:
    """A code's history: scans on every bill, refusals and removals."""
    h = call(args, "lookup", code=args.code)
    if args.json:
        print_json(h)
        return 0
    print(f"{h['code']}  {h['name'] or ''}".rstrip())
    rows = [
        (s["scanned_at"], s["action"], s["bill"], scan_result(s), s["reason"]) for s in h["scans"]
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


# -- tui ---------------------------------------------------------------------------


def cmd_tui(args: argparse.Namespace) -> int:
    """Run the dispatch terminal (Textual) attached to the daemon, or with one embedded."""
    from scanner_agent.ops.roles import role_hint, role_problem

    problem = role_problem("tui")
    if problem is not None:  # the tui extra is not installed
        raise ScannerAgentError(f"Failed to start the TUI: {problem}: {role_hint('tui')}")
    from scanner_agent.tui import run_tui

    if args.embedded:
        cfg = load_config(args.config or DEFAULT_CONFIG_PATH)
        return run_tui(None, config=cfg, bell=args.bell)
    return run_tui(tui_sockets(args), bell=args.bell)


def tui_sockets(args: argparse.Namespace) -> list[str]:
    """The agents the TUI attaches to: every ``--socket``, else ``control.docks`` of the
    config, else its ``control.socket``.  Two or more open the docks overview."""
    if args.socket:
        return list(args.socket)
    config = args.config or (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None)
    if config:
        control = load_config(config).control
        if control.docks:
            return list(control.docks)
        return [control.socket]
    return [socket_path(argparse.Namespace(socket=None, config=None))]


def register(add: AddCommand) -> None:
    """Add ``status``, ``lookup`` and ``tui``."""
    p = add("status", cmd_status, "Show the running agent's status (over its control socket).")
    control_args(p)

    p = add("lookup", cmd_lookup, "Show a code's history: scans, refusals, removals.")
    control_args(p)
    p.add_argument("code", help="the code (as scanned or normalised)")

    p = add("tui", cmd_tui, "Run the dispatch terminal attached to the running agent.")
    config_arg(p)
    p.add_argument(
        "--socket",
        action="append",
        help="control socket (default: control.docks or control.socket of the config); "
        "repeat it to watch several docks in one overview",
    )
    p.add_argument(
        "--embedded", action="store_true", help="run the agent inside the TUI (needs --config)"
    )
    p.add_argument("--bell", action="store_true", help="ring the terminal bell on a bad scan")
