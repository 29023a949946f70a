"""The daemon: sources -> intake (parse, group commit) -> outbox -> sync loop.

It owns the lifecycle of every part, in the order that keeps the good-read
promise: the outbox opens (and is checked) before any source starts, sources
stop before the committer drains, and the committer drains before the outbox
closes, so no acknowledged scan is ever lost on a clean stop, and a crash
loses nothing that was acknowledged because acknowledgement follows COMMIT.

The core imports nothing from Textual; the TUI observes and gives commands
through the control interface on a UNIX socket (see ``docs/control.md``).

One concern per module:

* ``_daemon``: :class:`Daemon`, the lifecycle that starts and stops the parts,
  reload (SIGHUP) and the answers the control server asks for (it is the
  server's :class:`~scanner_agent.control.server.ControlledAgent`);
* ``_wiring``: composition: the outbox, the sink, the sync loop, the bill desk,
  the committer, the intake and the sources built from the config and joined;
* ``_lifecycle``: :class:`DaemonState`, waiting for sources to start, watching
  them, signal handlers;
* ``_reload``: what a reload may change (:data:`RELOADABLE`) and reports
  (:class:`ReloadResult`);
* ``_status``: the one place an :class:`~scanner_agent.control.AgentStatus` is
  built from the running parts;
* ``_housekeeping``: pruning and checkpointing the outbox, systemd's watchdog
  and status line;
* ``_services``: the optional metrics endpoint (loaded only when configured).

``scanner-agent run`` as one call (preflight, the process set up, this daemon run until a
signal) is :func:`scanner_agent.ops.serve.serve`: the daemon imports no preflight.
"""

from scanner_agent.daemon._daemon import Daemon, install_signal_handlers
from scanner_agent.daemon._housekeeping import HOUSEKEEPING_INTERVAL_S
from scanner_agent.daemon._lifecycle import DaemonState
from scanner_agent.daemon._reload import RELOADABLE, ReloadResult
from scanner_agent.daemon._wiring import BoundIntake

__all__ = [
    "HOUSEKEEPING_INTERVAL_S",
    "RELOADABLE",
    "BoundIntake",
    "Daemon",
    "DaemonState",
    "ReloadResult",
    "install_signal_handlers",
]
