"""The dispatch terminal: a Textual TUI attached to the daemon's control socket.

Only this package imports Textual; the daemon core never does
(``tests/test_import_hygiene.py``).  Start it with ``scanner-agent tui``.
"""

from __future__ import annotations

from scanner_agent.tui._agent import AgentLink, EventSource, SocketAgent
from scanner_agent.tui._app import DispatchApp, DocksApp
from scanner_agent.tui._dispatch_screen import DispatchScreen
from scanner_agent.tui._docks_screen import DocksScreen
from scanner_agent.tui._embedded import BackgroundLoop, EmbeddedAgent
from scanner_agent.tui._launch import make_app, run_docks, run_tui

__all__ = [
    "AgentLink",
    "BackgroundLoop",
    "DispatchApp",
    "DispatchScreen",
    "DocksApp",
    "DocksScreen",
    "EmbeddedAgent",
    "EventSource",
    "SocketAgent",
    "make_app",
    "run_docks",
    "run_tui",
]
