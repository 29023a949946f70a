"""The daemon side of the control interface: a UNIX socket server on the daemon's loop.

Imported by the daemon only: a client (the CLI, the TUI) imports
:mod:`scanner_agent.control`, which never loads this module, the bill desk or
the outbox.  The server answers from a :class:`ControlledAgent`, a small
protocol the daemon implements, so it never imports the daemon.

Requests on one connection are answered in order.  Every bound is a
``[control]`` setting (docs/control.md), so no client (a bug, a stuck TUI, a
hostile local user) can stop scanning:

* at most ``max_clients`` connections; one more gets an ``unavailable`` reply
  and is closed;
* a request line is at most ``max_line_bytes`` and nests at most
  :data:`~scanner_agent.control.MAX_DEPTH` deep (an over-long line gets one
  error and the connection is closed: the stream cannot be resynchronised);
* a request line, once started, must end within ``request_timeout_s``; an
  idle connection may stay;
* replies and events are written straight to the connection; a client that
  leaves more than ``max_backlog_bytes`` unsent (a subscriber that never
  reads) is disconnected, so its lag costs nothing per scan;
* argument strings are capped (a code at :data:`MAX_CODE_CHARS`, others at
  :data:`~scanner_agent.control.MAX_ARG_CHARS`), and decoding a long line,
  parsing a code to look up and parsing an imported CSV run on the agent's
  ``control`` lane, never on the event loop that acknowledges scans;
* every exception ends as an error reply or a closed connection, never
  escaping the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import grp
import logging
import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner_agent.bills import BillError
from scanner_agent.config import ControlConfig
from scanner_agent.control._agent import ControlledAgent
from scanner_agent.control._commands import MAX_CODE_CHARS, Commands, Handler, short
from scanner_agent.control._conn import Conn, bind_private
from scanner_agent.control._protocol import (
    MAX_ARG_CHARS,
    OLDEST_VERSION,
    PROTOCOL_VERSION,
    ControlError,
    decode,
    encode,
)
from scanner_agent.kernel import LaneBusy, RawScan, ScannerAgentError, ScanOutcome
from scanner_agent.status import AgentStatus

if TYPE_CHECKING:
    from scanner_agent.codes import ScanResult

__all__ = ["MAX_CODE_CHARS", "ControlServer", "ControlledAgent"]

log = logging.getLogger(__name__)

INLINE_DECODE_BYTES = 16 * 1024
"""Request lines up to this long are decoded on the loop; longer ones on the control lane."""
REFUSAL_LOG_INTERVAL_S = 60.0
"""At most one warning about refused connections, and one about clients disconnected for
their backlog, per this many seconds."""


class ControlServer:
    """Serves the :mod:`scanner_agent.control` protocol for one agent."""

    def __init__(self, agent: ControlledAgent, cfg: ControlConfig) -> None:
        self.agent = agent
        self.cfg = cfg
        self.path = Path(cfg.socket)
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[Conn] = set()
        self._inode: int | None = None
        self.lane = agent.control_lane
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
        self.commands: dict[str, Handler] = Commands(agent).table
        """Every command by name."""

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
            listener = bind_private(path)
            try:
                # Mode and group are set before the socket listens, so no client connects
                # before they hold; until then only the owner could (see bind_private).
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

    def counters(self) -> dict[str, int]:
        """What the bounds did since start (``status`` ``control``)."""
        return {
            "clients": self.clients,
            "refused": self.refused,
            "dropped": self.dropped,
            "answered": self.answered,
        }

    # -- connections ---------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._conns) >= self.cfg.max_clients:
            await self._refuse(writer)
            return
        conn = Conn(writer, self.cfg.max_backlog_bytes)
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
        refusal = Conn(writer, self.cfg.max_backlog_bytes)
        refusal.send(
            self._error(
                None,
                "unavailable",
                f"Failed to serve a control client: {limit} are connected already "
                f"(control.max_clients = {limit})",
            )
        )
        await refusal.close()

    async def _requests(self, conn: Conn, reader: asyncio.StreamReader) -> None:
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

    async def _handle(self, conn: Conn, line: bytes) -> bytes:
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
                f"protocol version {short.repr(version)} is not supported (this agent speaks "
                f"{PROTOCOL_VERSION})",
            )
        cmd = req.get("cmd")
        handler = self.commands.get(cmd) if isinstance(cmd, str) else None
        if handler is None:
            return self._error(
                req_id,
                "unknown_command",
                f"unknown command {short.repr(cmd)} (known: {', '.join(sorted(self.commands))})",
            )
        args = req.get("args") or {}
        if not isinstance(args, dict):
            return self._error(req_id, "bad_request", "args: expected an object")
        if self.agent.desk is None and cmd not in ("hello", "subscribe", "unsubscribe"):
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
        if isinstance(result, AgentStatus):  # its one JSON form, in the client's version
            result = result.to_json(version)
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
        desk = self.agent.desk
        name, units, carton = ("", 1, False)
        if desk is not None and result.valid:
            name, units, carton = desk.describe(result.code, result.product)
        action, bill = self.agent.route_of(scan.source)
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
