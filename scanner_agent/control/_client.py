"""A small blocking client of the control interface, for the CLI and the TUI's worker threads.

::

    with ControlClient("/run/scanner-agent/control.sock") as agent:
        agent.call("bill.open", number="SO-1", type=201)
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from scanner_agent.control._protocol import (
    EVENT_KINDS,
    MAX_REPLY,
    PROTOCOL_VERSION,
    ControlError,
    ControlUnavailable,
    RemoteError,
    decode,
    encode,
)


def _connect(path: str, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        why = exc.strerror or str(exc)
        raise ControlUnavailable(
            f"Failed to connect to the agent at {path!r}: {why} (is it running? see control.socket)"
        ) from exc
    return sock


class _Silent(ControlUnavailable):
    """No reply in time: the agent is there but slow (asking again would only wait longer)."""


class _Lines:
    """Reads protocol lines from a socket."""

    def __init__(self, sock: socket.socket, path: str) -> None:
        self._file = sock.makefile("rb")
        self._path = path

    def next(self) -> dict[str, Any]:
        try:
            line = self._file.readline(MAX_REPLY + 1)
        except TimeoutError as exc:
            raise _Silent(f"Failed to hear from the agent at {self._path!r}: timed out") from exc
        except OSError as exc:
            raise ControlUnavailable(
                f"Failed to read from the agent at {self._path!r}: {exc}"
            ) from exc
        if not line:
            raise ControlUnavailable(f"Failed to read from the agent at {self._path!r}: it hung up")
        try:
            return decode(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ControlError(f"Failed to parse a reply from the agent: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()


class ControlUncertain(ControlUnavailable):
    """A request was sent and its reply lost (the agent hung up or went silent).

    It may have been done, so it was not repeated: the clerk checks before
    giving it again.
    """

    def __init__(self, cmd: str, message: str) -> None:
        super().__init__(message)
        self.cmd = cmd
        """The command that may have been done."""


REPEATABLE = frozenset(
    {"hello", "status", "queue.stats", "lookup", "bill.types", "bill.show", "bill.list"}
    | {"bill.history"}
)
"""Commands that change nothing: asking again after a lost reply is safe."""


class _SendFailed(Exception):
    """The request did not leave this end: the agent never received it."""


class _HungUp(Exception):
    """The request was sent and its reply lost: it may have been done."""

    def __init__(self, message: str, *, silent: bool) -> None:
        super().__init__(message)
        self.silent = silent
        """It timed out (the agent is slow) rather than hung up."""


class ControlClient:
    """Requests over one connection (opened on first use, reopened after a failure).

    The connection outlives an agent restart: a request whose send fails (the
    agent closed its end) never reached it, so it is sent once more on a new
    connection.  A request that was sent and then lost its reply may have been
    done; only a :data:`REPEATABLE` one is asked again, any other raises
    :class:`ControlUncertain`.  Thread-safe: calls from several threads are
    serialised.
    """

    def __init__(self, path: str, *, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._lines: _Lines | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (a later call reconnects); safe from another thread."""
        if self._sock is not None:
            # First: a thread blocked reading returns at once (closing the buffered
            # reader would wait for it while it holds the reader's lock).
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        if self._lines is not None:
            self._lines.close()
            self._lines = None
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def call(self, cmd: str, /, **args: Any) -> Any:
        """Send one request and return its result.

        Raises:
            ControlUncertain: the request was sent and the agent hung up or went
                silent before its reply: it may have been done, so it is not repeated.
            ControlUnavailable: the agent cannot be reached.
            RemoteError: the agent refused the request (``code`` says why).
        """
        with self._lock:
            try:
                reply = self._exchange(cmd, args)
            except _SendFailed:
                reply = self._again(cmd, args)
            except _HungUp as exc:
                if cmd not in REPEATABLE:
                    raise self._uncertain(cmd, exc) from exc
                if exc.silent:
                    raise ControlUnavailable(str(exc)) from exc
                reply = self._again(cmd, args)
        if reply.get("ok"):
            return reply.get("result")
        error = reply.get("error") or {}
        raise RemoteError(str(error.get("code", "internal")), str(error.get("message", "failed")))

    def _again(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        """The one retry, on a new connection; a second failure is the caller's to hear."""
        try:
            return self._exchange(cmd, args)
        except _SendFailed as exc:
            raise ControlUnavailable(
                f"Failed to talk to the agent at {self.path!r}: {exc.__cause__}"
            ) from exc.__cause__
        except _HungUp as exc:
            if cmd not in REPEATABLE:
                raise self._uncertain(cmd, exc) from exc
            raise ControlUnavailable(str(exc)) from exc.__cause__

    def _uncertain(self, cmd: str, exc: _HungUp) -> ControlUncertain:
        return ControlUncertain(
            cmd,
            f"{exc} after {cmd} was sent: it may have been done; check before repeating it",
        )

    def _exchange(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        """One request and its reply over the cached connection (opened here if need be).

        Raises:
            _SendFailed: the request never left (the cached connection was dead).
            _HungUp: it was sent; the agent hung up, failed or timed out before replying.
            ControlUnavailable: no connection could be made.
        """
        if self._sock is None:
            self._sock = _connect(self.path, self.timeout)
            self._lines = _Lines(self._sock, self.path)
        assert self._lines is not None
        req_id = next(self._ids)
        payload = {"v": PROTOCOL_VERSION, "id": req_id, "cmd": cmd, "args": args}
        try:
            self._sock.sendall(encode(payload))
        except OSError as exc:
            self.close()
            raise _SendFailed(str(exc)) from exc
        try:
            while True:
                reply = self._lines.next()
                if reply.get("id") == req_id:
                    return reply
        except ControlUnavailable as exc:
            self.close()
            raise _HungUp(str(exc), silent=isinstance(exc, _Silent)) from exc
        except ControlError:
            self.close()
            raise


class EventStream:
    """A subscription: iterate to receive events (blocking); :meth:`close` from any thread."""

    def __init__(
        self, path: str, *, events: Sequence[str] = EVENT_KINDS, timeout: float = 10.0
    ) -> None:
        self.path = path
        self._sock = _connect(path, timeout)
        self._lines = _Lines(self._sock, path)
        self._closed = False
        try:
            self._sock.sendall(
                encode(
                    {
                        "v": PROTOCOL_VERSION,
                        "id": 0,
                        "cmd": "subscribe",
                        "args": {"events": list(events)},
                    }
                )
            )
            reply = self._lines.next()
            while "event" in reply:
                reply = self._lines.next()
        except OSError as exc:
            self.close()
            raise ControlUnavailable(f"Failed to subscribe at {path!r}: {exc}") from exc
        except ControlError:
            self.close()
            raise
        if not reply.get("ok"):
            self.close()
            error = reply.get("error") or {}
            raise RemoteError(str(error.get("code")), str(error.get("message")))
        self._sock.settimeout(None)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Events until the agent hangs up (then :class:`ControlUnavailable`) or :meth:`close`."""
        while not self._closed:
            try:
                event = self._lines.next()
            except ControlError:
                if self._closed:
                    return
                raise
            if "event" in event:
                yield event

    def close(self) -> None:
        """Stop the stream; a thread blocked in iteration returns."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._lines.close()
        with contextlib.suppress(OSError):
            self._sock.close()
