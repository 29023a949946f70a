"""Starting the TUI: the app for an agent link, run on a socket or with a daemon embedded."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
from datetime import tzinfo
from pathlib import Path

from scanner_agent.config import AgentConfig
from scanner_agent.tui._agent import AgentLink, SocketAgent
from scanner_agent.tui._app import DispatchApp, DocksApp
from scanner_agent.tui._embedded import EmbeddedAgent

__all__ = ["make_app", "run_docks", "run_tui"]


def make_app(
    agent: AgentLink,
    *,
    bell: bool = False,
    tz: tzinfo | None = None,
    exit_when: threading.Event | None = None,
) -> DispatchApp:
    """The app, attached to ``agent`` (tests pass their own)."""
    return DispatchApp(agent, bell=bell, tz=tz, exit_when=exit_when)


def run_docks(sockets: list[str], *, bell: bool = False) -> int:
    """The docks overview of several agents; Enter opens one's full view, Esc there comes back."""
    DocksApp([(path, SocketAgent(path)) for path in sockets], bell=bell).run()
    return 0


def run_tui(
    socket: str | list[str] | None, *, config: AgentConfig | None = None, bell: bool = False
) -> int:
    """Run the TUI on ``socket`` (several: the docks overview), or with a daemon embedded from
    ``config``; exit status."""
    if config is None:
        assert socket is not None
        sockets = [socket] if isinstance(socket, str) else list(socket)
        if len(sockets) > 1:
            return run_docks(sockets, bell=bell)
        make_app(SocketAgent(sockets[0]), bell=bell).run()
        return 0
    with tempfile.TemporaryDirectory(prefix="scanner-agent-tui-") as tmp:
        path = config.control.socket
        if not path or not Path(path).parent.is_dir():
            path = str(Path(tmp) / "control.sock")
            config = dataclasses.replace(
                config, control=dataclasses.replace(config.control, socket=path)
            )
        # The daemon's log lines would tear the screen: alarms show in the TUI instead.
        root = logging.getLogger()
        quiet = logging.NullHandler()
        root.addHandler(quiet)
        agent = EmbeddedAgent(config)
        agent.start()
        try:
            make_app(SocketAgent(path), bell=bell).run()
        finally:
            agent.stop()
            root.removeHandler(quiet)
    return 0
