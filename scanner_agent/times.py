"""Times as the agent reports them: ISO 8601 for programs, local time with its zone for people.

Two rules, kept here once so every report follows them:

* **Machines** (``--json``, the control socket, the outbox) get ISO 8601 /
  RFC 3339 with an explicit offset, in UTC with milliseconds:
  ``2026-11-23T08:30:01.000+00:00`` (:func:`iso`).  Never a Unix-time number:
  a reader cannot tell an epoch float from a duration, and a string with an
  offset sorts, parses and compares the same everywhere.
* **People** (the CLI's text, the TUI) get the box's local time zone with the
  zone shown, ``2026-11-23 16:30:01 CST`` (:func:`local`), so a clerk in
  Shanghai reading a time off the screen never has to know the agent stores
  UTC.  The zone is ``TZ`` / ``/etc/localtime`` unless a caller passes one
  (tests pin it).

Durations ("3h 12m ago") are :func:`age`; they need no zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo

__all__ = ["age", "clock", "iso", "local", "parse_time", "zone_name"]

_ZONE_ABBREVIATION = re.compile(r"[A-Za-z]{2,6}")


def iso(at: float | datetime | None) -> str | None:
    """``at`` (a Unix time or an aware datetime) as ISO 8601 in UTC with milliseconds.

    >>> iso(1795422601.0)
    '2026-11-23T08:30:01.000+00:00'
    >>> iso(None) is None
    True
    """
    if at is None:
        return None
    if isinstance(at, datetime):
        moment = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


def parse_time(at: str | float | datetime | None) -> datetime | None:
    """An aware datetime from ISO 8601 text, a Unix time or a datetime; ``None`` if unreadable.

    Text without an offset is taken as UTC: the agent writes every time in UTC,
    so a time without one was written by something that meant UTC.
    """
    if at is None or isinstance(at, bool):
        return None
    if isinstance(at, datetime):
        moment = at
    elif isinstance(at, int | float):
        try:
            return datetime.fromtimestamp(at, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    else:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def zone_name(moment: datetime) -> str:
    """The zone of an aware datetime as people write it: ``CST``, ``UTC``, else ``+08:00``.

    An abbreviation when the zone database has one; a fixed offset with no name
    (``UTC+08:00`` from :class:`datetime.timezone`) is shown as the offset.
    """
    name = moment.strftime("%Z")
    if _ZONE_ABBREVIATION.fullmatch(name):
        return name
    offset = moment.strftime("%z")  # +0800
    return f"{offset[:3]}:{offset[3:5]}" if len(offset) >= 5 else (name or "UTC")


def local(at: str | float | datetime | None, tz: tzinfo | None = None) -> str:
    """``2026-11-23 16:30:01 CST``: ``at`` in the local zone (or ``tz``), zone shown; ``-`` if none.

    Text that is not a time is returned as it is, so nothing is hidden.
    """
    moment = parse_time(at)
    if moment is None:
        return "-" if at is None or at == "" else str(at)
    shown = moment.astimezone(tz)
    return f"{shown:%Y-%m-%d %H:%M:%S} {zone_name(shown)}"


def clock(at: str | float | datetime | None, tz: tzinfo | None = None) -> str:
    """``16:30:01``: the time of day in the local zone (or ``tz``), for a column headed by the zone.

    ``-`` when there is no time; unreadable text is cut to eight characters.
    """
    moment = parse_time(at)
    if moment is None:
        return "-" if not at else str(at)[:8]
    return moment.astimezone(tz).strftime("%H:%M:%S")


def age(seconds: float) -> str:
    """``45s ago``, ``12m 5s ago``, ``3h 12m ago``, ``2d 4h ago``: the two largest units.

    A negative age is a time ahead of this clock, and says so.
    """
    s = int(abs(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        text = f"{days}d {hours}h"
    elif hours:
        text = f"{hours}h {minutes}m"
    elif minutes:
        text = f"{minutes}m {s}s"
    else:
        text = f"{s}s"
    return f"{text} ago" if seconds >= 0 else f"{text} in the future (clock ahead?)"
