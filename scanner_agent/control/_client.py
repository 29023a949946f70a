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


class _Lines:
    """Reads protocol lines from a socket."""

    def __init__(self, sock: socket.socket, path: str) -> None:
        self._file = sock.makefile("rb")
        self._path = path

    def next(self) -> dict[str, Any]:
        try:
            line = self._file.readline(MAX_REPLY + 1)
        except TimeoutError as exc:
            raise ControlUnavailable(
                f"Failed to hear from the agent at {self._path!r}: timed out"
            ) from exc
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


class ControlClient:
    """Requests over one connection (opened on first use, reopened after a failure).

    Thread-safe: calls from several threads are serialised.
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
            ControlUnavailable: the agent cannot be reached or hung up.
            RemoteError: the agent refused the request (``code`` says why).
        """
        with self._lock:
            if self._sock is None:
                self._sock = _connect(self.path, self.timeout)
                self._lines = _Lines(self._sock, self.path)
            assert self._lines is not None
            req_id = next(self._ids)
            payload = {"v": PROTOCOL_VERSION, "id": req_id, "cmd": cmd, "args": args}
            try:
                self._sock.sendall(encode(payload))
                while True:
                    reply = self._lines.next()
                    if reply.get("id") == req_id:
                        break
            except (ControlError, OSError) as exc:
                self.close()
                if isinstance(exc, ControlError):
                    raise
                raise ControlUnavailable(
                    f"Failed to talk to the agent at {self.path!r}: {exc}"
                ) from exc
        if reply.get("ok"):
            return reply.get("result")
        error = reply.get("error") or {}
        raise RemoteError(str(error.get("code", "internal")), str(error.get("message", "failed")))


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
