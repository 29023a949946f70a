"""The control commands: each checks its arguments and makes one call on the agent.

Argument strings are capped (a code at :data:`MAX_CODE_CHARS`, others at
:data:`~scanner_agent.control.MAX_ARG_CHARS`); parsing a code to look up and
reading an imported CSV run on the agent's ``control`` lane, never on the event
loop that acknowledges scans.
"""

from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Awaitable, Callable
from typing import Any

from scanner_agent import __version__
from scanner_agent.bills import BillDesk, CodeHistory, bill_types
from scanner_agent.codes import MAX_SCAN_CHARS, parse_scan
from scanner_agent.control._agent import ControlledAgent
from scanner_agent.control._conn import Conn
from scanner_agent.control._protocol import (
    EVENT_KINDS,
    MAX_ARG_CHARS,
    OLDEST_VERSION,
    PROTOCOL_VERSION,
    ControlError,
)

MAX_CODE_CHARS = MAX_SCAN_CHARS
"""Longest code a command looks at: the longest scan any symbol carries (``codes``)."""

Handler = Callable[[Conn, dict[str, Any]], Awaitable[Any]]
"""A command: the connection that asked (``subscribe`` changes it) and the request's args."""

short = reprlib.Repr()
"""Shortens a client's value quoted back in an error message."""
short.maxstring = 60
short.maxother = 60


def arg(
    args: dict[str, Any],
    name: str,
    kind: type,
    *,
    default: Any = None,
    max_chars: int | None = MAX_ARG_CHARS,
) -> Any:
    """``args[name]`` checked to be a ``kind`` (an int may come as digits), or ``default``.

    Raises:
        ControlError: the value is of another type, or a string longer than ``max_chars``.
    """
    value = args.get(name, default)
    if value is None:
        return None
    if kind is int and isinstance(value, bool):
        raise ControlError(f"{name}: expected an integer, got {short.repr(value)}")
    if kind is int and isinstance(value, str) and len(value) <= 20 and value.strip().isdigit():
        return int(value)
    if not isinstance(value, kind):
        raise ControlError(f"{name}: expected {kind.__name__}, got {short.repr(value)}")
    if isinstance(value, str) and max_chars is not None and len(value) > max_chars:
        raise ControlError(f"{name}: longer than {max_chars} characters")
    return value


def required(
    args: dict[str, Any], name: str, kind: type, *, max_chars: int | None = MAX_ARG_CHARS
) -> Any:
    """:func:`arg` that must be given and not empty.

    Raises:
        ControlError: it is missing, empty or of another type.
    """
    value = arg(args, name, kind, max_chars=max_chars)
    if value is None or value == "":
        raise ControlError(f"{name}: required")
    return value


class Commands:
    """The command table of one server, answering from one agent."""

    def __init__(self, agent: ControlledAgent) -> None:
        self.agent = agent
        self.table: dict[str, Handler] = {
            "hello": self._hello,
            "status": self._status,
            "queue.stats": self._queue_stats,
            "lookup": self._lookup,
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "bill.types": self._bill_types,
            "bill.open": self._bill_open,
            "bill.close": self._bill_close,
            "bill.undo": self._bill_undo,
            "bill.remove": self._bill_remove,
            "bill.import": self._bill_import,
            "bill.show": self._bill_show,
            "bill.list": self._bill_list,
            "bill.history": self._bill_history,
            "bill.ack": self._bill_ack,
        }
        """Every command by name (``hello`` lists them)."""

    @property
    def _desk(self) -> BillDesk:
        desk = self.agent.desk
        assert desk is not None  # the server refuses bill commands while there is none
        return desk

    async def _hello(self, conn: Conn, args: dict[str, Any]) -> Any:
        return {
            "protocol": PROTOCOL_VERSION,
            "protocols": list(range(OLDEST_VERSION, PROTOCOL_VERSION + 1)),
            "version": __version__,
            "device_id": self.agent.device_id,
            "commands": sorted(self.table),
            "events": list(EVENT_KINDS),
        }

    async def _status(self, conn: Conn, args: dict[str, Any]) -> Any:
        # Typed: the server sends it in the protocol version the client asked for.
        return await self.agent.agent_status()

    async def _queue_stats(self, conn: Conn, args: dict[str, Any]) -> Any:
        stats = await self.agent.queue_stats()
        return {**dataclasses.asdict(stats), "backlog": stats.backlog}

    async def _lookup(self, conn: Conn, args: dict[str, Any]) -> Any:
        text = str(required(args, "code", str, max_chars=None)).strip()
        desk = self._desk
        if len(text) > MAX_CODE_CHARS:
            # Longer than any symbol carries: refused at once, unparsed and not looked up
            # (parse_scan only measures it); the answer says why, like any invalid code.
            parsed = parse_scan(text)
            history = CodeHistory(code=text[:MAX_CODE_CHARS], scans=(), refused=(), removals=())
        else:
            # A long GS1 code takes milliseconds to parse: on the control lane.
            parsed = await self.agent.control_lane.run(parse_scan, text)
            code = parsed.code if parsed.valid and parsed.code else text
            history = await desk.lookup(code)
        name, units, carton = desk.describe(parsed.code, parsed.product)
        return {
            **dataclasses.asdict(history),
            "parsed": parsed.to_dict(),
            "name": name,
            "units": units,
            "carton": carton,
        }

    async def _subscribe(self, conn: Conn, args: dict[str, Any]) -> Any:
        kinds = arg(args, "events", list) or list(EVENT_KINDS)
        unknown = [k for k in kinds if not isinstance(k, str) or k not in EVENT_KINDS]
        if unknown:
            raise ControlError(
                f"events: unknown {short.repr(unknown)} (known: {', '.join(EVENT_KINDS)})"
            )
        conn.events.update(kinds)
        return {"events": sorted(conn.events)}

    async def _unsubscribe(self, conn: Conn, args: dict[str, Any]) -> Any:
        conn.events.clear()
        return {"events": []}

    async def _bill_types(self, conn: Conn, args: dict[str, Any]) -> Any:
        return [t.to_dict() for t in bill_types().values()]

    async def _bill_open(self, conn: Conn, args: dict[str, Any]) -> Any:
        bill = await self._desk.open(
            str(required(args, "number", str)),
            required(args, "type", int),
            action=arg(args, "action", str),
            from_party=arg(args, "from", str, default=""),
            to_party=arg(args, "to", str, default=""),
            note=arg(args, "note", str, default=""),
            params=arg(args, "params", dict),
        )
        out: dict[str, Any] = dataclasses.asdict(bill)
        actions = self.agent.source_actions()
        if bill.action not in actions:
            out["warning"] = (
                f"no source scans with action {bill.action} "
                f"(sources: {', '.join(sorted(set(actions))) or 'none'}); "
                "its scans will not reach this bill"
            )
        return out

    async def _bill_close(self, conn: Conn, args: dict[str, Any]) -> Any:
        return dataclasses.asdict(await self._desk.close(arg(args, "number", str)))

    async def _bill_undo(self, conn: Conn, args: dict[str, Any]) -> Any:
        removal = await self._desk.undo(
            arg(args, "number", str),
            reason=str(required(args, "reason", str)),
            origin=arg(args, "origin", str, default=""),
        )
        return dataclasses.asdict(removal)

    async def _bill_remove(self, conn: Conn, args: dict[str, Any]) -> Any:
        code = arg(args, "code", str, max_chars=MAX_CODE_CHARS)
        if code:
            parsed = await self.agent.control_lane.run(parse_scan, code)
            code = parsed.code if parsed.valid and parsed.code else code.strip()
        removal = await self._desk.remove(
            arg(args, "number", str),
            reason=str(required(args, "reason", str)),
            seq=arg(args, "seq", int),
            code=code,
            origin=arg(args, "origin", str, default=""),
        )
        return dataclasses.asdict(removal)

    async def _bill_import(self, conn: Conn, args: dict[str, Any]) -> Any:
        desk = self._desk
        text = str(required(args, "csv", str, max_chars=None))  # bounded by the line
        kind = arg(args, "kind", str, default="expected")
        if kind == "packs":
            ratios, relations = await desk.import_packs(text)
            return {"kind": kind, "ratios": ratios, "relations": relations}
        if kind != "expected":
            raise ControlError(f"kind: expected 'expected' or 'packs', got {kind!r}")
        number = desk.current(arg(args, "number", str))
        products = await desk.import_expected(number, text)
        return {"kind": kind, "bill": number, "products": products}

    async def _bill_show(self, conn: Conn, args: dict[str, Any]) -> Any:
        limit = arg(args, "scans", int, default=100)
        view = await self._desk.view(arg(args, "number", str), scan_limit=max(0, min(limit, 5000)))
        return dataclasses.asdict(view)

    async def _bill_list(self, conn: Conn, args: dict[str, Any]) -> Any:
        bills = await self._desk.list_bills(
            state=arg(args, "state", str), limit=arg(args, "limit", int, default=50)
        )
        return [dataclasses.asdict(b) for b in bills]

    async def _bill_ack(self, conn: Conn, args: dict[str, Any]) -> Any:
        bill = str(required(args, "number", str))
        cleared = await self.agent.acknowledge(bill, arg(args, "note", str, default=""))
        return {"bill": bill, "cleared": cleared}

    async def _bill_history(self, conn: Conn, args: dict[str, Any]) -> Any:
        return await self._desk.history(arg(args, "number", str))
