"""The daemon side of the control interface: a UNIX socket server on the daemon's loop.

Requests on one connection are answered in order.  Every connection has a
bounded outgoing queue drained by its own writer task, so a slow or stuck
client (a TUI in a suspended terminal) never blocks scanning: when its queue
is full, events for it are dropped and counted, and a ``dropped`` event tells
it how many once there is room again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import grp
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.base import RawScan, ScanOutcome
from scanner_agent import __version__
from scanner_agent.bills import BillError, bill_types
from scanner_agent.codes import ScanResult, parse_scan
from scanner_agent.config import ControlConfig
from scanner_agent.control._protocol import (
    EVENT_KINDS,
    MAX_LINE,
    PROTOCOL_VERSION,
    ControlError,
    decode,
    encode,
)
from scanner_agent.errors import ScannerAgentError

if TYPE_CHECKING:
    from scanner_agent.daemon import Daemon

log = logging.getLogger(__name__)

QUEUE_LIMIT = 2000
"""Lines waiting for one client before its events are dropped."""

Handler = Callable[["_Conn", dict[str, Any]], Awaitable[Any]]


class _Conn:
    """One client connection: a bounded outgoing queue and its writer task."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_LIMIT)
        self.events: set[str] = set()
        self.dropped = 0
        self.task = asyncio.create_task(self._drain(), name="control writer")

    def send(self, line: bytes, *, event: bool = False) -> None:
        """Queue a line; events are dropped (and counted) when the client lags."""
        if event and self.dropped and self.queue.qsize() < QUEUE_LIMIT // 2:
            self.queue.put_nowait(encode({"event": "dropped", "count": self.dropped}))
            self.dropped = 0
        if self.queue.full():
            if event:
                self.dropped += 1
                return
            # A reply must get through: make room by dropping the oldest line.
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
                self.dropped += 1
        self.queue.put_nowait(line)

    async def _drain(self) -> None:
        try:
            while True:
                line = await self.queue.get()
                self.writer.write(line)
                await self.writer.drain()
        except (ConnectionError, OSError):
            pass

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        # Abort, not close: a client that stopped reading must not hold up a stopping daemon
        # while its unsent lines wait for a flush that never comes.
        self.writer.transport.abort()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


def _arg(args: dict[str, Any], name: str, kind: type, *, default: Any = None) -> Any:
    value = args.get(name, default)
    if value is None:
        return None
    if kind is int and isinstance(value, bool):
        raise ControlError(f"{name}: expected an integer, got {value!r}")
    if kind is int and isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if not isinstance(value, kind):
        raise ControlError(f"{name}: expected {kind.__name__}, got {value!r}")
    return value


def _required(args: dict[str, Any], name: str, kind: type) -> Any:
    value = _arg(args, name, kind)
    if value is None or value == "":
        raise ControlError(f"{name}: required")
    return value


class ControlServer:
    """Serves :mod:`scanner_agent.control` protocol v1 for one :class:`Daemon`."""

    def __init__(self, daemon: Daemon, cfg: ControlConfig) -> None:
        self.daemon = daemon
        self.cfg = cfg
        self.path = Path(cfg.socket)
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[_Conn] = set()
        self._inode: int | None = None
        self.in_progress = 0
        """Requests being answered now."""
        self.commands: dict[str, Handler] = {
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

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Bind the socket (taking over a stale one, never a live agent's).

        Raises:
            ControlError: the socket cannot be bound or another agent serves it.
        """
        path = self.path
        if path.exists() or path.is_symlink():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise ControlError(f"Failed to bind control socket {str(path)!r}: not a socket")
            if await self._alive(path):
                raise ControlError(
                    f"Failed to bind control socket {str(path)!r}: another agent is serving it"
                )
            path.unlink()
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(path), limit=MAX_LINE
            )
            os.chmod(path, self.cfg.mode_bits)
            if self.cfg.group:
                os.chown(path, -1, grp.getgrnam(self.cfg.group).gr_gid)
            self._inode = path.stat().st_ino
        except KeyError:
            await self.stop()
            raise ControlError(
                f"Failed to set the group of control socket {str(path)!r}: "
                f"no group {self.cfg.group!r} (control.group)"
            ) from None
        except OSError as exc:
            await self.stop()
            raise ControlError(
                f"Failed to bind control socket {str(path)!r}: {exc.strerror or exc}"
            ) from exc
        log.info("control interface on %s", path)

    @staticmethod
    async def _alive(path: Path) -> bool:
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1.0)
        except (OSError, TimeoutError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (
                errno.ECONNREFUSED,
                errno.ENOENT,
                None,
            ):
                log.warning("control socket %s: %s", path, exc)
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def stop(self) -> None:
        """Close every connection and remove the socket (if it is still ours)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        conns, self._conns = list(self._conns), set()
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
        if self._inode is not None:
            with contextlib.suppress(OSError):
                if self.path.stat().st_ino == self._inode:
                    self.path.unlink()
            self._inode = None

    @property
    def clients(self) -> int:
        """Connected clients."""
        return len(self._conns)

    # -- connections ---------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        self._conns.add(conn)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than MAX_LINE: the stream cannot be resynchronised
                    conn.send(self._error(None, "bad_request", f"line over {MAX_LINE} bytes"))
                    break
                if not line:
                    break
                if line.strip():
                    self.in_progress += 1
                    try:
                        conn.send(await self._handle(conn, line))
                    finally:
                        self.in_progress -= 1
            # Let the writer flush what is queued before closing.
            for _ in range(100):
                if conn.queue.empty():
                    break
                await asyncio.sleep(0.01)
        except (ConnectionError, OSError):
            pass
        finally:
            self._conns.discard(conn)
            await conn.close()

    @staticmethod
    def _error(req_id: Any, code: str, message: str) -> bytes:
        return encode({"id": req_id, "ok": False, "error": {"code": code, "message": message}})

    async def _handle(self, conn: _Conn, line: bytes) -> bytes:
        try:
            req = decode(line)
        except (ValueError, UnicodeDecodeError) as exc:
            return self._error(None, "bad_request", f"Failed to parse request: {exc}")
        req_id = req.get("id")
        version = req.get("v", PROTOCOL_VERSION)
        if not isinstance(version, int) or version > PROTOCOL_VERSION or version < 1:
            return self._error(
                req_id,
                "unsupported_version",
                f"protocol version {version!r} is not supported (this agent speaks "
                f"{PROTOCOL_VERSION})",
            )
        cmd = req.get("cmd")
        handler = self.commands.get(cmd) if isinstance(cmd, str) else None
        if handler is None:
            return self._error(
                req_id,
                "unknown_command",
                f"unknown command {cmd!r} (known: {', '.join(sorted(self.commands))})",
            )
        args = req.get("args") or {}
        if not isinstance(args, dict):
            return self._error(req_id, "bad_request", "args: expected an object")
        if self.daemon.desk is None and cmd not in ("hello", "subscribe", "unsubscribe"):
            return self._error(req_id, "unavailable", "the agent is starting or stopping")
        try:
            result = await handler(conn, args)
        except BillError as exc:
            return self._error(req_id, exc.code, str(exc))
        except ControlError as exc:
            return self._error(req_id, "bad_request", str(exc))
        except ScannerAgentError as exc:
            return self._error(req_id, "unavailable", str(exc))
        except Exception as exc:
            log.exception("control command %s failed", cmd)
            return self._error(req_id, "internal", f"{type(exc).__name__}: {exc}")
        try:
            return encode({"id": req_id, "ok": True, "result": result})
        except (TypeError, ValueError) as exc:
            log.exception("control command %s: result not JSON", cmd)
            return self._error(req_id, "internal", f"result not JSON: {exc}")

    # -- events ----------------------------------------------------------------

    def _broadcast(self, kind: str, event: dict[str, Any]) -> None:
        targets = [c for c in self._conns if kind in c.events]
        if not targets:
            return
        line = encode({"event": kind, **event})
        for conn in targets:
            conn.send(line, event=True)

    def on_scan(self, scan: RawScan, result: ScanResult, outcome: ScanOutcome) -> None:
        """A daemon listener: every scan outcome goes to ``scan`` subscribers."""
        if not any("scan" in c.events for c in self._conns):
            return
        desk = self.daemon.desk
        name, units, carton = ("", 1, False)
        if desk is not None and result.valid:
            name, units, carton = desk.describe(result.code, result.product)
        action, bill = self.daemon.route_of(scan.source)
        self._broadcast(
            "scan",
            {
                "at": scan.scanned_at.isoformat(timespec="milliseconds"),
                "code": outcome.code,
                "scheme": result.scheme.value if result.scheme else None,
                "product": result.product,
                "name": name,
                "units": units,
                "carton": carton,
                "verdict": outcome.verdict.value,
                "reason": outcome.reason,
                "seq": outcome.seq,
                "source": scan.source,
                "device": scan.device,
                "action": action,
                "bill": bill if outcome.accepted else None,
            },
        )

    def on_bill(self, what: str, number: str, details: dict[str, Any]) -> None:
        """A bill desk listener: changes go to ``bill`` subscribers."""
        self._broadcast("bill", {"what": what, "bill": number, **details})

    # -- commands ------------------------------------------------------------------

    async def _hello(self, conn: _Conn, args: dict[str, Any]) -> Any:
        return {
            "protocol": PROTOCOL_VERSION,
            "version": __version__,
            "device_id": self.daemon.cfg.device_id,
            "commands": sorted(self.commands),
            "events": list(EVENT_KINDS),
        }

    async def _status(self, conn: _Conn, args: dict[str, Any]) -> Any:
        status = await self.daemon.status()
        status["control"] = {**status.get("control", {}), "clients": self.clients}
        return status

    async def _queue_stats(self, conn: _Conn, args: dict[str, Any]) -> Any:
        stats = await self.daemon.queue_stats()
        return {**dataclasses.asdict(stats), "backlog": stats.backlog}

    async def _lookup(self, conn: _Conn, args: dict[str, Any]) -> Any:
        text = str(_required(args, "code", str)).strip()
        parsed = parse_scan(text)
        code = parsed.code if parsed.valid and parsed.code else text
        desk = self.daemon.desk
        assert desk is not None
        history = await desk.lookup(code)
        name, units, carton = desk.describe(parsed.code, parsed.product)
        return {
            **dataclasses.asdict(history),
            "parsed": parsed.to_dict(),
            "name": name,
            "units": units,
            "carton": carton,
        }

    async def _subscribe(self, conn: _Conn, args: dict[str, Any]) -> Any:
        kinds = _arg(args, "events", list) or list(EVENT_KINDS)
        unknown = [k for k in kinds if k not in EVENT_KINDS]
        if unknown:
            raise ControlError(f"events: unknown {unknown!r} (known: {', '.join(EVENT_KINDS)})")
        conn.events.update(kinds)
        return {"events": sorted(conn.events)}

    async def _unsubscribe(self, conn: _Conn, args: dict[str, Any]) -> Any:
        conn.events.clear()
        return {"events": []}

    async def _bill_types(self, conn: _Conn, args: dict[str, Any]) -> Any:
        return [t.to_dict() for t in bill_types().values()]

    async def _bill_open(self, conn: _Conn, args: dict[str, Any]) -> Any:
        desk = self.daemon.desk
        assert desk is not None
        bill = await desk.open(
            str(_required(args, "number", str)),
            _required(args, "type", int),
            action=_arg(args, "action", str),
            from_party=_arg(args, "from", str, default=""),
            to_party=_arg(args, "to", str, default=""),
            note=_arg(args, "note", str, default=""),
            params=_arg(args, "params", dict),
        )
        out: dict[str, Any] = dataclasses.asdict(bill)
        if bill.action not in self.daemon.source_actions():
            out["warning"] = (
                f"no source scans with action {bill.action} "
                f"(sources: {', '.join(sorted(set(self.daemon.source_actions()))) or 'none'}); "
                "its scans will not reach this bill"
            )
        return out

    async def _bill_close(self, conn: _Conn, args: dict[str, Any]) -> Any:
        desk = self.daemon.desk
        assert desk is not None
        return dataclasses.asdict(await desk.close(_arg(args, "number", str)))

    async def _bill_undo(self, conn: _Conn, args: dict[str, Any]) -> Any:
        desk = self.daemon.desk
        assert desk is not None
        removal = await desk.undo(
            _arg(args, "number", str),
            reason=str(_required(args, "reason", str)),
            origin=_arg(args, "origin", str, default=""),
        )
        return dataclasses.asdict(removal)

    async def _bill_remove(self, conn: _Conn, args: dict[str, Any]) -> Any:
        desk = self.daemon.desk
        assert desk is not None
        code = _arg(args, "code", str)
        if code:
            parsed = parse_scan(code)
            code = parsed.code if parsed.valid and parsed.code else code.strip()
        removal = await desk.remove(
            _arg(args, "number", str),
            reason=str(_required(args, "reason", str)),
            seq=_arg(args, "seq", int),
            code=code,
            origin=_arg(args, "origin", str, default=""),
        )
        return dataclasses.asdict(removal)

    async def _bill_import(self, conn: _Conn, args: dict[str, Any]) -> Any:
        desk = self.daemon.desk
        assert desk is not None
        text = str(_required(args, "csv", str))
        kind = _arg(args, "kind", str, default="expected")
        if kind == "packs":
            ratios, relations = await desk.import_packs(text)
            return {"kind": kind, "ratios": ratios, "relations": relations}
        if kind != "expected":
            raise ControlError(f"kind: expected 'expected' or 'packs', got {kind!r}")
        number = desk.current(_arg(args, "number", str))
        products = await desk.import_expected(number, text)
        return {"kind": kind, "bill": number, "products": products}

    async def _bill_show(self, conn: _Conn, args: dict[str, Any]) -> Any:
        desk = self.daemon.desk
        assert desk is not None
        limit = _arg(args, "scans", int, default=100)
        view = await desk.view(_arg(args, "number", str), scan_limit=max(0, min(limit, 5000)))
        return dataclasses.asdict(view)

    async def _bill_list(self, conn: _Conn, args: dict[str, Any]) -> Any:
        desk = self.daemon.desk
        assert desk is not None
        bills = await desk.list_bills(
            state=_arg(args, "state", str), limit=_arg(args, "limit", int, default=50)
        )
        return [dataclasses.asdict(b) for b in bills]

    async def _bill_ack(self, conn: _Conn, args: dict[str, Any]) -> Any:
        bill = str(_required(args, "number", str))
        cleared = await self.daemon.acknowledge(bill, _arg(args, "note", str, default=""))
        return {"bill": bill, "cleared": cleared}

    async def _bill_history(self, conn: _Conn, args: dict[str, Any]) -> Any:
        desk = self.daemon.desk
        assert desk is not None
        return await desk.history(_arg(args, "number", str))
