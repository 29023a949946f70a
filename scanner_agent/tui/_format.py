"""How the TUI says things: codes, reasons, times, verdicts and progress, each in the cells it has.

Pure functions and tables of the views and screens (no widget here): one
place for the abbreviations (:data:`REASON_SHORT`), the colours of a link or a
verdict, and how a code or a name is cut to fit 80 columns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from rich.cells import cell_len
from rich.text import Text

from scanner_agent.outbox import BACKLOG_STATES, reason_label
from scanner_agent.times import age, parse_time, zone_name
from scanner_agent.times import clock as _clock

BAD_VERDICTS = frozenset({"invalid", "duplicate", "full", "error"})
"""The scan verdicts that are refusals (the red bar, the bell)."""

VERDICT_STYLE = {
    "accepted": ("OK", "bold green"),
    "invalid": ("INVALID", "bold white on red"),
    "duplicate": ("DUPLICATE", "bold black on yellow"),
    "full": ("FULL", "bold white on magenta"),
    "error": ("ERROR", "bold white on magenta"),
}
RESULT_STYLE = {
    "accepted": "green",
    "duplicate": "yellow",
    "rejected": "bold red",
    "removed": "dim strike",
    "pending": "cyan",
    "held": "cyan",
    "in_flight": "blue",
    "quarantined": "bold white on red",
}
LINK_STYLE = {
    "online": "bold green",
    "degraded": "bold yellow",
    "offline": "bold red",
    "auth_failed": "bold white on red",
    "disabled": "dim",
}


REASON_SHORT = {
    "duplicate scan": "duplicate",
    "a product barcode, not a trace code": "product EAN",
    "malformed gs1 code": "bad GS1",
    "invalid GTIN check digit": "GTIN check",
    "empty scan": "empty",
    "unreadable scan": "unreadable",
    "not a trace code": "not a code",
    "not a recognised trace code": "unknown code",
    "drug trace code must be 20 digits": "cn20 length",
    "20 digits not starting with 8": "cn20 not 8…",
    "too long": "too long",
    "outbox full": "outbox full",
    "code not registered on the platform": "unregistered",
    "refused by the sink": "sink refused",
    "no bill open": "no bill open",
}
"""Every refusal reason's label (``outbox.reason_label``) as a table column shows it, at most
:data:`REASON_CELLS` cells.  The one place the abbreviations are defined: the line under a table
spells the selected row's reason out in full beside its label."""
REASON_CELLS = 12
_TAKES_ONLY = re.compile(r"^(?P<platform>.+?) takes only ")
CODE_CELLS = 24
"""A code column's width: a cn20 code whole, a GS1 code's product and serial ends."""


def elide_middle(text: str, cells: int) -> str:
    """``text`` in at most ``cells`` terminal cells, its middle replaced by ``…``.

    A code keeps both ends: ``(01)06901234…2(21)A1B2C3`` still shows the
    product it starts with and the serial it ends with.
    """
    if cell_len(text) <= cells:
        return text
    room = cells - 1
    head = ""
    for ch in text:
        if cell_len(head + ch) > (room + 1) // 2:
            break
        head += ch
    tail = ""
    for ch in reversed(text[len(head) :]):
        if cell_len(head) + cell_len(ch + tail) > room:
            break
        tail = ch + tail
    return f"{head}…{tail}"


def elide_end(text: str, cells: int) -> str:
    """``text`` in at most ``cells`` cells, cut at the end with ``…`` (a product name)."""
    if cell_len(text) <= cells:
        return text
    out = ""
    for ch in text:
        if cell_len(out + ch) > cells - 1:
            break
        out += ch
    return out + "…"


def reason_short(reason: str | None) -> str:
    """A refusal reason as its column label (:data:`REASON_SHORT`, else its label cut to fit)."""
    if not reason:
        return ""
    label = reason_label(reason)
    takes = _TAKES_ONLY.match(label)
    if takes:  # "码上放心 takes only 20-digit trace codes": a code this sink cannot send
        return elide_end(f"not {takes['platform']}", REASON_CELLS)
    return REASON_SHORT.get(label) or elide_end(label, REASON_CELLS)


def reason_full(reason: str | None) -> str:
    """``bad GS1 = malformed gs1 code: ai (17): …``: the label and the whole reason."""
    if not reason:
        return ""
    short = reason_short(reason)
    return reason if short == reason else f"{short} = {reason}"


def clock(at: str | None, tz: tzinfo | None) -> str:
    """``HH:MM:SS`` of an ISO 8601 time in ``tz`` (local when ``None``), under a :func:`zone` heading."""
    return _clock(at, tz)


def zone(tz: tzinfo | None) -> str:
    """The zone the TUI shows times in, as its time columns and lines name it (``CST``)."""
    return zone_name(datetime.now(UTC).astimezone(tz))


def time_heading(tz: tzinfo | None) -> str:
    """``time CST``: the heading of a time column, so every time on screen has its zone."""
    return f"time {zone(tz)}"


def with_zone(time_of_day: str, zone_name: str) -> str:
    """``16:30:01 CST``; ``-`` stays ``-`` (no time, no zone)."""
    return time_of_day if time_of_day == "-" else f"{time_of_day} {zone_name}"


def ago(at: str | None, now: float) -> str:
    """An ISO 8601 time as ``12s ago`` / ``3m 5s ago`` (:func:`scanner_agent.times.age`) or ``-``."""
    moment = parse_time(at)
    if moment is None:
        return "-"
    return age(max(0.0, now - moment.timestamp()))


def number_cell(n: int, style: str = "") -> Text:
    return Text(str(n), style=style, justify="right")


def verdict_text(verdict: str) -> Text:
    """A scan verdict as a coloured label."""
    label, style = VERDICT_STYLE.get(verdict, (verdict.upper(), "bold"))
    return Text(label, style=style)


def result_text(scan: dict[str, Any]) -> Text:
    """A bill scan's row state as a coloured label (a delivered one: the service's verdict)."""
    key = str(scan.get("state", ""))
    if key == "delivered" and scan.get("result"):
        key = str(scan["result"])
    return Text(key.replace("_", " "), style=RESULT_STYLE.get(key, ""))


def bill_progress(view: dict[str, Any] | None, *, lead: str = "  ", kind: bool = True) -> Text:
    """The open bill for the status line: ``  SO-1 销售出库 11/20 +1 unexpected``.

    Progress counts only what the expected list asks for: a product not on it,
    and units beyond a product's expected count, are shown apart as unexpected.
    A bill that is no longer open is not "the bill" any more: ``  no bill open``.
    """
    if view is None or view["bill"]["state"] != "open":
        return Text(f"{lead}no bill open", style="dim")
    b = view["bill"]
    out = Text(f"{lead}{b['number']} {b['type_zh'] + ' ' if kind else ''}", style="bold cyan")
    expected = sum(int(ln["expected"]) for ln in view["lines"])
    unexpected = sum(int(ln["extra"]) for ln in view["lines"])
    if expected:
        done = sum(min(int(ln["scanned"]), int(ln["expected"])) for ln in view["lines"])
        out.append(f"{done}/{expected}", "bold green" if done == expected else "bold cyan")
    else:
        out.append(f"{b['totals']['units']} units", "bold cyan")
    if expected and unexpected:
        out.append(f" +{unexpected} unexpected", "bold yellow")
    return out


def scan_summary(scan: dict[str, Any], tz: tzinfo | None) -> Text:
    """A bill scan as a dialog names it: time with zone, code, product, units."""
    at = clock(scan.get("scanned_at"), tz)
    product = scan.get("name") or scan.get("product") or "unknown product"
    units = f"  carton of {scan['units']}" if scan.get("carton") else ""
    return Text.assemble(
        (f"#{scan['seq']}  ", "dim"),
        f"{with_zone(at, zone(tz))}  ",
        (str(scan.get("code") or ""), "bold"),
        "\n",
        str(product),
        units,
    )


def scan_detail(scan: dict[str, Any], *, removed: str | None = None) -> Text:
    """The line under a table for its selected scan: nothing cut, nothing abbreviated.

    The reason comes first (it is what the clerk selected the row for), then
    the whole code, its product and bill.  ``removed``: why it was taken off.
    """
    out = Text()
    reason = scan.get("reason")
    if removed is not None:
        out.append(f"removed: {removed}  ", "bold")
    elif reason:
        out.append(f"{reason_full(str(reason))}  ", "bold")
    out.append(str(scan.get("code") or ""), "bold")
    if scan.get("scheme"):
        out.append(f" ({scan['scheme']})", "dim")
    product = scan.get("name") or scan.get("product") or ""
    if product:
        out.append(f"  {product}")
        if scan.get("product") and scan.get("name"):
            out.append(f" {scan['product']}", "dim")
    if scan.get("carton"):
        out.append(f"  carton of {scan.get('units')}")
    if scan.get("bill"):
        out.append(f"  bill {scan['bill']}", "dim")
    return out


def state_counts(counts: Mapping[str, Any], *, owed: bool | None = None, zeros: bool = True) -> str:
    """Rows per row state as ``pending 2  held 1  in flight 0 ...``, in the outbox's order.

    ``owed`` picks the backlog's states (``True``) or the others (``False``);
    ``zeros=False`` leaves out states with no rows.
    """
    backlog = {s.value for s in BACKLOG_STATES}
    return "  ".join(
        f"{k.replace('_', ' ')} {v}"
        for k, v in counts.items()
        if (owed is None or (k in backlog) == owed) and (zeros or v)
    )
