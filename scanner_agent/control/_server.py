"""The daemon side of the control interface: a UNIX socket server on the daemon's loop.

Requests on one connection are answered in order.  Every bound is a
``[control]`` setting (docs/control.md), so no client (a bug, a stuck TUI, a
hostile local user) can stop scanning:

* at most ``max_clients`` connections; one more gets an ``unavailable`` reply
  and is closed;
* a request line is at most ``max_line_bytes`` and nests at most
  :data:`MAX_DEPTH` deep (an over-long line gets one error and the connection
  is closed: the stream cannot be resynchronised);
* a request line, once started, must end within ``request_timeout_s``; an
  idle connection may stay;
* replies and events are written straight to the connection; a client that
  leaves more than ``max_backlog_bytes`` unsent (a subscriber that never
  reads) is disconnected, so its lag costs nothing per scan;
* argument strings are capped (a code at :data:`MAX_CODE_CHARS`, others at
  :data:`MAX_ARG_CHARS`), and decoding a long line, parsing a code to look up
  and parsing an imported CSV run on the daemon's ``control`` lane, never on
  the event loop that acknowledges scans;
* every exception ends as an error reply or a closed connection, never
  escaping the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import grp
import logging
import os
import reprlib
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner_agent import __version__
from scanner_agent.bills import BillError, CodeHistory, bill_types
from scanner_agent.codes import ScanResult, parse_scan
from scanner_agent.config import ControlConfig
from scanner_agent.control._protocol import (
    EVENT_KINDS,
    MAX_ARG_CHARS,
    MAX_CODE_CHARS,
    PROTOCOL_VERSION,
    ControlError,
    decode,
    encode,
)
from scanner_agent.control._v1 import OLDEST_VERSION, as_version
from scanner_agent.kernel import LaneBusy, RawScan, ScannerAgentError, ScanOutcome

if TYPE_CHECKING:
    from scanner_agent.daemon import Daemon

log = logging.getLogger(__name__)

INLINE_DECODE_BYTES = 16 * 1024
"""Request lines up to this long are decoded on the loop; longer ones on the control lane."""
REFUSAL_LOG_INTERVAL_S = 60.0
"""At most one warning about refused connections, and one about clients disconnected for
their backlog, per this many seconds."""

Handler = Callable[["_Conn", dict[str, Any]], Awaitable[Any]]

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


class _Conn:
    """One client connection; lines go straight to its transport, whose backlog is bounded."""

    def __init__(self, writer: asyncio.StreamWriter, max_backlog: int) -> None:
        self.writer = writer
        self.transport = writer.transport
        self.max_backlog = max_backlog
        self.events: set[str] = set()
        self.dropped = False
        """Disconnected for leaving more than ``max_backlog`` bytes unsent."""

    def send(self, line: bytes) -> None:
        """Write one line; a client already ``max_backlog`` bytes behind is disconnected.

        The check comes before the write, so one large reply always goes to a
        client that keeps up: a connection holds at most ``max_backlog`` bytes
        plus one line.
        """
        if self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() > self.max_backlog:
            self.dropped = True
            self.transport.abort()
            return
        self.transport.write(line)

    async def close(self) -> None:
        """Flush what is written (briefly), then close; a client that stopped reading is cut."""
        if not self.transport.is_closing():
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        # Abort, not close: a client that stopped reading must not hold up a stopping daemon
        # while its unsent lines wait for a flush that never comes.
        self.transport.abort()


def _bind_private(path: Path) -> socket.socket:
    """A UNIX socket bound at ``path`` (not yet listening), its file the owner's alone.

    bind() creates the file with the process umask: bound under a permissive one
    (0, in a program that embeds the daemon and never set one) and chmod'ed after,
    the socket is open to every local user in between.  The umask is process-wide,
    so it is tightened only around the bind; a file another thread creates in that
    instant gets a tighter mode, never a looser one.
    """
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            listener.bind(str(path))
        finally:
            os.umask(old)
        listener.setblocking(False)
    except BaseException:
        listener.close()
        raise
    return listener


def _arg(
    args: dict[str, Any],
    name: str,
    kind: type,
    *,
    default: Any = None,
    max_chars: int | None = MAX_ARG_CHARS,
) -> Any:
    value = args.get(name, default)
    if value is None:
        return None
    if kind is int and isinstance(value, bool):
        raise ControlError(f"{name}: expected an integer, got {_short.repr(value)}")
    if kind is int and isinstance(value, str) and len(value) <= 20 and value.strip().isdigit():
        return int(value)
    if not isinstance(value, kind):
        raise ControlError(f"{name}: expected {kind.__name__}, got {_short.repr(value)}")
    if isinstance(value, str) and max_chars is not None and len(value) > max_chars:
        raise ControlError(f"{name}: longer than {max_chars} characters")
    return value


def _required(
    args: dict[str, Any], name: str, kind: type, *, max_chars: int | None = MAX_ARG_CHARS
) -> Any:
    value = _arg(args, name, kind, max_chars=max_chars)
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
        self.lane = daemon.control_lane
        """Where long requests are decoded, codes parsed and imports read."""
        self.in_progress = 0
        """Requests being answered now."""
        self.answered = 0
        """Requests answered since start."""
        self.refused = 0
        """Connections refused because ``max_clients`` were connected."""
        self.dropped = 0
        """Clients disconnected for leaving more than ``max_backlog_bytes`` unsent."""
        self._refusal_logged = -REFUSAL_LOG_INTERVAL_S
        self._drop_logged = -REFUSAL_LOG_INTERVAL_S
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
            listener = _bind_private(path)
            try:
                # Mode and group are set before the socket listens, so no client connects
                # before they hold; until then only the owner could (see _bind_private).
                os.chmod(path, self.cfg.mode_bits)
                if self.cfg.group:
                    os.chown(path, -1, grp.getgrnam(self.cfg.group).gr_gid)
                self._inode = path.stat().st_ino
                self._server = await asyncio.start_unix_server(
                    self._serve, sock=listener, limit=self.cfg.max_line_bytes
                )
            except BaseException:
                listener.close()
                raise
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
        if len(self._conns) >= self.cfg.max_clients:
            await self._refuse(writer)
            return
        conn = _Conn(writer, self.cfg.max_backlog_bytes)
        self._conns.add(conn)
        try:
            await self._requests(conn, reader)
        except (ConnectionError, OSError):
            pass
        except Exception:  # a bug here must cost one connection, never the server
            log.exception("control: connection failed")
        finally:
            self._conns.discard(conn)
            if conn.dropped:
                self.dropped += 1
                now = time.monotonic()
                if now - self._drop_logged >= REFUSAL_LOG_INTERVAL_S:
                    self._drop_logged = now
                    log.warning(
                        "control: client disconnected: more than %d bytes unsent "
                        "(control.max_backlog_bytes); it is not reading; %d disconnected "
                        "since start",
                        self.cfg.max_backlog_bytes,
                        self.dropped,
                    )
            await conn.close()

    async def _refuse(self, writer: asyncio.StreamWriter) -> None:
        self.refused += 1
        limit = self.cfg.max_clients
        now = time.monotonic()
        if now - self._refusal_logged >= REFUSAL_LOG_INTERVAL_S:
            self._refusal_logged = now
            log.warning(
                "control: refused a client: %d are connected (control.max_clients); "
                "%d refused since start",
                limit,
                self.refused,
            )
        refusal = _Conn(writer, self.cfg.max_backlog_bytes)
        refusal.send(
            self._error(
                None,
                "unavailable",
                f"Failed to serve a control client: {limit} are connected already "
                f"(control.max_clients = {limit})",
            )
        )
        await refusal.close()

    async def _requests(self, conn: _Conn, reader: asyncio.StreamReader) -> None:
        """Answer request lines in order until the client hangs up or breaks a bound."""
        cfg = self.cfg
        # A connection cut off (its backlog, the daemon stopping) answers none of the lines
        # it still has buffered: its slot is free at once.
        while not conn.transport.is_closing():
            try:
                line = await self._read_request(reader)
            except asyncio.LimitOverrunError:
                conn.send(
                    self._error(
                        None,
                        "bad_request",
                        f"Failed to read a request: request line longer than "
                        f"{cfg.max_line_bytes} bytes (control.max_line_bytes)",
                    )
                )
                return
            except TimeoutError:
                conn.send(
                    self._error(
                        None,
                        "bad_request",
                        f"Failed to read a request: the line was not finished within "
                        f"{cfg.request_timeout_s:g} s (control.request_timeout_s)",
                    )
                )
                return
            if line is None:
                return
            if line.strip():
                self.in_progress += 1
                try:
                    conn.send(await self._handle(conn, line))
                finally:
                    self.in_progress -= 1
                    self.answered += 1
            # Take turns with the rest of the loop: a read whose line is already buffered
            # does not yield, so a client that wrote thousands of requests at once would
            # otherwise hold the loop (scanners' ACKs, the watchdog) until all are answered,
            # and its replies could not be flushed meanwhile.
            await asyncio.sleep(0)

    async def _read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """The next line, or None at the end; only a started line has a deadline.

        Raises:
            asyncio.LimitOverrunError: the line is longer than ``max_line_bytes``.
            TimeoutError: the line did not end within ``request_timeout_s``.
        """
        first = await reader.read(1)  # an idle client may wait here as long as it likes
        if not first:
            return None
        if first == b"\n":
            return first
        try:
            async with asyncio.timeout(self.cfg.request_timeout_s):
                return first + await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return None  # hung up in the middle of a line: nothing to answer

    @staticmethod
    def _error(req_id: Any, code: str, message: str) -> bytes:
        return encode({"id": req_id, "ok": False, "error": {"code": code, "message": message}})

    async def _handle(self, conn: _Conn, line: bytes) -> bytes:
        try:
            if len(line) <= INLINE_DECODE_BYTES:
                req = decode(line)
            else:  # a long line costs milliseconds to check and decode: not on the loop
                req = await self.lane.run(decode, line)
        except ValueError as exc:  # UnicodeDecodeError and JSON errors are ValueErrors
            return self._error(None, "bad_request", f"Failed to parse request: {exc}")
        except LaneBusy as exc:
            return self._error(None, "unavailable", str(exc))
        req_id = req.get("id")
        if not isinstance(req_id, (str, int, float, type(None))) or (
            isinstance(req_id, str) and len(req_id) > MAX_ARG_CHARS
        ):
            return self._error(None, "bad_request", "id: expected a number or a short string")
        version = req.get("v", PROTOCOL_VERSION)
        if not isinstance(version, int) or not OLDEST_VERSION <= version <= PROTOCOL_VERSION:
            return self._error(
                req_id,
                "unsupported_version",
                f"protocol version {_short.repr(version)} is not supported (this agent speaks "
                f"{PROTOCOL_VERSION})",
            )
        cmd = req.get("cmd")
        handler = self.commands.get(cmd) if isinstance(cmd, str) else None
        if handler is None:
            return self._error(
                req_id,
                "unknown_command",
                f"unknown command {_short.repr(cmd)} (known: {', '.join(sorted(self.commands))})",
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
        except LaneBusy as exc:
            return self._error(req_id, "unavailable", str(exc))
        except ScannerAgentError as exc:
            return self._error(req_id, "unavailable", str(exc))
        except Exception as exc:
            log.exception("control command %s failed", cmd)
            return self._error(req_id, "internal", f"{type(exc).__name__}: {exc}")
        result = as_version(str(cmd), result, version)  # a version 1 client: its shapes
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
            conn.send(line)

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
            "protocols": list(range(OLDEST_VERSION, PROTOCOL_VERSION + 1)),
            "version": __version__,
            "device_id": self.daemon.cfg.device_id,
            "commands": sorted(self.commands),
            "events": list(EVENT_KINDS),
        }

    async def _status(self, conn: _Conn, args: dict[str, Any]) -> Any:
        status = await self.daemon.status()
        status["control"] = {
            **status.get("control", {}),
            "clients": self.clients,
            "refused": self.refused,
            "dropped": self.dropped,
            "answered": self.answered,
        }
        return status

    async def _queue_stats(self, conn: _Conn, args: dict[str, Any]) -> Any:
        stats = await self.daemon.queue_stats()
        return {**dataclasses.asdict(stats), "backlog": stats.backlog}

    async def _lookup(self, conn: _Conn, args: dict[str, Any]) -> Any:
        text = str(_required(args, "code", str, max_chars=None)).strip()
        desk = self.daemon.desk
        assert desk is not None
        if len(text) > MAX_CODE_CHARS:
            # Longer than any symbol carries: refused at once, unparsed and not looked up
            # (parse_scan only measures it); the answer says why, like any invalid code.
            parsed = parse_scan(text)
            history = CodeHistory(code=text[:MAX_CODE_CHARS], scans=(), refused=(), removals=())
        else:
            parsed = await self.lane.run(parse_scan, text)  # a long GS1 code: milliseconds
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

    async def _subscribe(self, conn: _Conn, args: dict[str, Any]) -> Any:
        kinds = _arg(args, "events", list) or list(EVENT_KINDS)
        unknown = [k for k in kinds if not isinstance(k, str) or k not in EVENT_KINDS]
        if unknown:
            raise ControlError(
                f"events: unknown {_short.repr(unknown)} (known: {', '.join(EVENT_KINDS)})"
            )
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
        code = _arg(args, "code", str, max_chars=MAX_CODE_CHARS)
        if code:
            parsed = await self.lane.run(parse_scan, code)
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
        text = str(_required(args, "csv", str, max_chars=None))  # bounded by the line
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
