"""``scanner-agent run`` as one library call: the preflight, the process set up for the
daemon, then the daemon run until SIGTERM or SIGINT.

Process-wide settings (logging, the interpreter's tuning, the umask) belong here and not
in :meth:`Daemon.run`: a daemon built inside another program (a test, the demo) leaves
that program's process alone.  This is ops, beside the daemon rather than inside it: the
daemon imports no preflight, so :mod:`.roles`, which imports the daemon by name to say
whether this install can run it, closes no cycle through the preflight that asks it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from scanner_agent import interpreter
from scanner_agent.config import AgentConfig
from scanner_agent.daemon import Daemon, install_signal_handlers
from scanner_agent.ops.logs import setup_logging
from scanner_agent.ops.preflight import RunAs, preflight

__all__ = ["PRIVATE_UMASK", "serve"]

PRIVATE_UMASK = 0o027
"""``run``'s umask: files at most 0640, directories 0750 (the unit's ``UMask=`` too)."""


def serve(cfg: AgentConfig, config_path: str | Path, *, log_level: str | None = None) -> None:
    """Check ``cfg`` as this user, set up the process, run the daemon until it is stopped.

    ``config_path`` is the file ``cfg`` was read from (named in errors, read again on a
    reload); ``log_level`` overrides ``cfg.log_level``.

    Raises:
        Refusal: what :func:`~scanner_agent.ops.preflight.preflight` refuses, before
            anything is created, migrated or logged.
        ConfigError: the credential cannot be read or is refused.
    """
    # Before anything is created, migrated or logged: what check-config checks, as this user.
    warnings = preflight(cfg, RunAs.me(), config_path)
    setup_logging(log_level or cfg.log_level)
    for warning in warnings:
        logging.getLogger("scanner_agent").warning("%s", warning)
    interpreter.tune_interpreter()
    # Files the agent creates (outbox, WAL, socket) get no "other" bits whatever the
    # caller's umask (systemd sets UMask=0027 too); a stricter umask is kept.
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)
    asyncio.run(_run(cfg, config_path))


async def _run(cfg: AgentConfig, config_path: str | Path) -> None:
    daemon = Daemon(cfg, config_path=config_path)
    install_signal_handlers(daemon)
    await daemon.run()
