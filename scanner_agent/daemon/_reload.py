"""What a reload (SIGHUP) may change in a running daemon, and what it reports."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from scanner_agent.config import AgentConfig

RELOADABLE = ("sync.url", "sync.token_file", "sync.token_env", "log_level", "metrics.listen")
"""Config keys :meth:`Daemon.reload` applies to a running daemon."""


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What :meth:`Daemon.reload` did."""

    applied: tuple[str, ...] = ()
    """Keys whose new value is in effect (``sync.url``, ``sync.token``, ``log_level``...)."""
    needs_restart: tuple[str, ...] = ()
    """Keys that changed in the file but take effect only after a restart."""
    error: str | None = None
    """Why the new config was refused (the old one is kept), or None."""


def changed_keys(old: AgentConfig, new: AgentConfig) -> list[str]:
    """Dotted keys whose value differs (a section's fields, or ``source`` as a whole)."""
    out: list[str] = []
    for f in dataclasses.fields(old):
        a, b = getattr(old, f.name), getattr(new, f.name)
        if a == b:
            continue
        if dataclasses.is_dataclass(a) and not isinstance(a, type):
            out.extend(
                f"{f.name}.{g.name}"
                for g in dataclasses.fields(a)
                if getattr(a, g.name) != getattr(b, g.name)
            )
        else:
            out.append("source" if f.name == "sources" else f.name)
    return out


def in_effect(old: AgentConfig, new: AgentConfig) -> AgentConfig:
    """The config a running daemon holds after a reload: ``old`` with the reloadable keys
    of ``new`` (the sync target and credential, the log level, the metrics address)."""
    sync = dataclasses.replace(
        old.sync, url=new.sync.url, token_file=new.sync.token_file, token_env=new.sync.token_env
    )
    return dataclasses.replace(old, sync=sync, log_level=new.log_level, metrics=new.metrics)
