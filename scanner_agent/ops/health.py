"""``GET /health`` and ``GET /ready`` beside ``/metrics``: is the agent alive, can it take scans.

Served by the metrics server (:class:`scanner_agent.ops.metrics.MetricsServer`) on
``[metrics] listen``, which accepts only loopback addresses, with the same
bounded snapshot the scrapes use: the daemon's typed status
(:class:`~scanner_agent.control.AgentStatus`) taken on its event loop, or a timeout when the loop is stalled.  Probes for process supervisors
and load balancers, as Vector and Fluent Bit offer them: the status code is the
answer (200 yes, 503 no), the JSON body says why.

``/health`` (liveness): 200 while the daemon's event loop answers and the
daemon is starting or running; 503 when the loop does not answer within the
snapshot timeout (a supervisor should restart it) or the daemon is stopping.
Body::

    {"status": "ok", "live": true, "state": "running", "uptime_s": 812.4}

``/ready`` (readiness): 200 when every check holds, else 503.  Body::

    {"status": "ready", "ready": true, "backlog": 0,
     "checks": {
       "daemon":  {"ok": true, "state": "running"},
       "outbox":  {"ok": true, "path": "/var/lib/scanner-agent/outbox.db", "writable": true,
                   "free_mb": 14022, "reserve_mb": 64},
       "sources": {"ok": true, "total": 2, "down": []},
       "link":    {"ok": true, "state": "offline"}}}

* ``daemon``: the daemon is running (ready, not starting or stopping);
* ``outbox``: the outbox file (or, before it exists, its directory) is writable by
  this process and the free space is at least ``outbox.min_free_mb``, the reserve
  below which the intake refuses scans;
* ``sources``: every hardware source has its device open (``down`` names the ones
  that do not); TCP and replay sources are up whenever the daemon runs, since a
  source that fails stops the daemon;
* ``link``: not ``auth_failed``.  An ``offline`` or ``degraded`` link keeps the
  agent ready: scans are kept in the outbox and sent when the link returns (that
  is what the outbox is for), while a refused credential needs a person.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner_agent.control import AgentStatus

__all__ = ["HealthProbe", "Verdict"]

Snapshot = Callable[[], AgentStatus]
"""The daemon's status; raises when the daemon did not answer in time."""
Verdict = tuple[int, dict[str, Any]]
"""The HTTP status code and the JSON body."""

LIVE_STATES = ("starting", "running")
READY_STATE = "running"
NOT_READY_LINKS = ("auth_failed",)


@dataclass(frozen=True)
class HealthProbe:
    """Answers ``/health`` and ``/ready`` from a snapshot and the outbox's own files."""

    snapshot: Snapshot
    outbox_path: str
    reserve_mb: int

    def liveness(self) -> Verdict:
        """``/health`` (see the module docstring)."""
        status, failure = self._status()
        if status is None:
            return 503, {"status": "fail", "live": False, "state": "unknown", "error": failure}
        live = status.state in LIVE_STATES
        body = {
            "status": "ok" if live else "fail",
            "live": live,
            "state": status.state,
            "uptime_s": status.uptime_s,
        }
        return (200 if live else 503), body

    def readiness(self) -> Verdict:
        """``/ready`` (see the module docstring)."""
        status, failure = self._status()
        if status is None:
            return 503, {
                "status": "not ready",
                "ready": False,
                "checks": {"daemon": {"ok": False, "state": "unknown", "error": failure}},
            }
        down = [d.source for d in status.devices if not d.connected]
        checks: dict[str, dict[str, Any]] = {
            "daemon": {"ok": status.state == READY_STATE, "state": status.state},
            "outbox": self._outbox(),
            "sources": {"ok": not down, "total": len(status.sources), "down": down},
            "link": {"ok": status.link not in NOT_READY_LINKS, "state": status.link},
        }
        ready = all(check["ok"] for check in checks.values())
        body = {
            "status": "ready" if ready else "not ready",
            "ready": ready,
            "backlog": status.backlog,
            "checks": checks,
        }
        return (200 if ready else 503), body

    def _status(self) -> tuple[AgentStatus | None, str]:
        try:
            return self.snapshot(), ""
        except Exception as exc:  # a stalled loop (timeout), a stopped daemon
            return None, f"the daemon's event loop did not answer: {type(exc).__name__}"

    def _outbox(self) -> dict[str, Any]:
        path = Path(self.outbox_path)
        target = path if path.exists() else path.parent
        writable = os.access(target, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)
        try:
            free_mb = int(shutil.disk_usage(path.parent).free // (1024 * 1024))
        except OSError:
            free_mb = 0
        return {
            "ok": writable and free_mb >= self.reserve_mb,
            "path": str(path),
            "writable": writable,
            "free_mb": free_mb,
            "reserve_mb": self.reserve_mb,
        }
