"""Control protocol version 1 results, for clients that still ask for version 1.

Version 2 changed one thing: every time in a ``status`` result is ISO 8601
with an offset, as everywhere else the agent reports times.  Version 1 gave
five of them as Unix times (seconds, a float): ``last_scan_at`` (per source),
``devices[].last_scan_at``, ``sync.last_success_at``, ``sync.retry_at`` and
``sync.recent_rejections[].at``.  A request that says ``"v": 1`` still gets
those as numbers, so a script written against version 1 keeps working; a
request with ``"v": 2``, or with no ``v``, gets version 2.  Nothing else
differs between the two.
"""

from __future__ import annotations

from typing import Any

from scanner_agent.times import parse_time

__all__ = ["OLDEST_VERSION", "as_version"]

OLDEST_VERSION = 1
"""The oldest protocol version the agent still answers in."""


def _unix(at: Any) -> float | None:
    moment = parse_time(at) if isinstance(at, str) else None
    return None if moment is None else moment.timestamp()


def _status_v1(status: dict[str, Any]) -> dict[str, Any]:
    out = dict(status)
    if isinstance(status.get("last_scan_at"), dict):
        out["last_scan_at"] = {k: _unix(v) for k, v in status["last_scan_at"].items()}
    if isinstance(status.get("devices"), list):
        out["devices"] = [
            {**d, "last_scan_at": _unix(d.get("last_scan_at"))} if isinstance(d, dict) else d
            for d in status["devices"]
        ]
    sync = status.get("sync")
    if isinstance(sync, dict):
        out["sync"] = {
            **sync,
            "last_success_at": _unix(sync.get("last_success_at")),
            "retry_at": _unix(sync.get("retry_at")),
            "recent_rejections": [
                {**r, "at": _unix(r.get("at"))} if isinstance(r, dict) else r
                for r in sync.get("recent_rejections", [])
            ],
        }
    return out


def as_version(cmd: str, result: Any, version: int) -> Any:
    """``result`` of ``cmd`` (a version 2 result) as protocol ``version`` gives it."""
    if version == 1 and cmd == "status" and isinstance(result, dict):
        return _status_v1(result)
    return result
