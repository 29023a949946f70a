"""What several command groups share: the config and outbox arguments, and the control call.

One place for each (issue 18): which config file a command reads, which
outbox file it opens (and that a command that only looks never creates one),
which control socket it talks to, and how the agent's refusal of a request
becomes an exit status.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner_agent.cli.output import json_flag
from scanner_agent.config import DEFAULT_CONFIG_PATH, AgentConfig, ControlConfig, load_config
from scanner_agent.kernel import ScannerAgentError, UsageError

if TYPE_CHECKING:
    from scanner_agent.outbox import Outbox

Handler = Callable[[argparse.Namespace], int]
"""A command: its parsed arguments in, its exit status out."""
AddCommand = Callable[[str, Handler, str], argparse.ArgumentParser]
"""``add(name, handler, help)``: registers a subcommand and returns its parser."""


def config_arg(p: argparse.ArgumentParser) -> None:
    """``--config``/``-c``: the config file (default :data:`DEFAULT_CONFIG_PATH`)."""
    p.add_argument("--config", "-c", help=f"config file (default {DEFAULT_CONFIG_PATH})")


def outbox_args(p: argparse.ArgumentParser) -> None:
    """``--config`` and ``--outbox``: a command that reads the outbox file itself."""
    config_arg(p)
    p.add_argument("--outbox", help="outbox file (default: outbox.path from the config)")


def control_args(p: argparse.ArgumentParser, *, with_json: bool = True) -> None:
    """``--config``, ``--socket`` (and ``--json``): a command that asks the running agent."""
    config_arg(p)
    p.add_argument("--socket", help="control socket (default: control.socket of the config)")
    if with_json:
        json_flag(p)


def load(args: argparse.Namespace) -> AgentConfig:
    """The config file named by ``--config``, else the default one."""
    path = Path(args.config) if args.config else DEFAULT_CONFIG_PATH
    return load_config(path)


def outbox_file(args: argparse.Namespace) -> Path:
    """``--outbox``, else ``outbox.path`` of the config; a usage error when there is no such file.

    Checked before anything opens it, so a command that only looks never
    creates an outbox where there was none.
    """
    path = Path(args.outbox or load(args).outbox.path)
    if not path.exists():
        raise UsageError(f"Failed to open outbox {str(path)!r}: no such file")
    return path


def open_outbox(args: argparse.Namespace) -> Outbox:
    """The outbox opened for writing (``queue retry``): the daemon's own open, migrations too."""
    from scanner_agent.outbox import Outbox

    return Outbox.open(outbox_file(args))


def read_outbox(args: argparse.Namespace) -> Outbox:
    """The outbox opened read-only: looking at a live daemon's file must never change it."""
    from scanner_agent.outbox import Outbox

    return Outbox.open_readonly(outbox_file(args))


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


def call(args: argparse.Namespace, cmd: str, **params: Any) -> Any:
    """One request to the running agent over its control socket; ``None`` params are left out.

    Raises:
        UsageError: the agent found the request itself wrong (``bad_request``, exit 2).
        ScannerAgentError: the agent could not do it, or could not be reached (exit 1).
    """
    from scanner_agent.control import ControlClient, RemoteError

    path = socket_path(args)
    if not path:
        raise ScannerAgentError("control.socket is empty: the control interface is off")
    with ControlClient(path) as client:
        try:
            return client.call(cmd, **{k: v for k, v in params.items() if v is not None})
        except RemoteError as exc:
            error = UsageError if exc.code == "bad_request" else ScannerAgentError
            raise error(str(exc)) from None


def read_text(file: str) -> str:
    """A UTF-8 file named on the command line (a BOM is dropped), or an error naming it."""
    try:
        return Path(file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScannerAgentError(f"Failed to read {file!r}: {exc}") from exc


def scan_result(scan: dict[str, Any]) -> str:
    """A scan's row state, with the service's verdict for a delivered one (``accepted``/``duplicate``).

    As ``bill show`` and ``lookup`` print it.
    """
    if scan["state"] == "delivered" and scan.get("result"):
        return str(scan["result"])
    return str(scan["state"])
