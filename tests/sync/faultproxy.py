"""A fault-injecting HTTP/1.1 proxy for sync tests: real sockets, its own thread and event loop.

It sits between the agent and the reference trace service on loopback and
forwards requests and replies byte for byte, keep-alive included.  Faults are
armed in a first-in, first-out queue and each is spent on the next
``POST /v1/batches`` (other requests always pass):

=====================  =========================================================
``REFUSE``             reset the agent's connection; nothing reaches the service
``HOLD_REQUEST``       forward the headers and half the body, then wait for
                       :meth:`FaultProxy.release_held`, then reset both sides
``RESET_AFTER_REPLY``  forward the request, read the service's reply, then reset
                       the agent's connection instead of forwarding it: the
                       batch is stored, the reply lost
``DELAY_REPLY``        hold the reply ``delay`` seconds (past the read timeout)
``STATUS``             forward the request (the service stores it), then answer
                       a raw ``status`` (500 by default) instead of the reply
``TRUNCATE_REPLY``     forward the reply's head and half its body, then close
``GARBAGE_REPLY``      answer ``200`` with a body that is not JSON
``MISMATCH_REPLY``     answer ``200`` with the results of one event dropped and
                       one unknown event added
=====================  =========================================================

``slow`` (seconds) delays every reply without failing it, so several batches
are in flight at once.  Every batch request is recorded in :attr:`seen`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Self


class Fault(enum.Enum):
    REFUSE = "refuse"
    HOLD_REQUEST = "hold_request"
    RESET_AFTER_REPLY = "reset_after_reply"
    DELAY_REPLY = "delay_reply"
    STATUS = "status"
    TRUNCATE_REPLY = "truncate_reply"
    GARBAGE_REPLY = "garbage_reply"
    MISMATCH_REPLY = "mismatch_reply"


@dataclass(frozen=True)
class Armed:
    fault: Fault
    delay: float = 0.0
    status: int = 500
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Seen:
    """One batch request as the proxy saw it."""

    at: float
    """``time.monotonic()`` when its request was complete."""
    key: str
    """Its ``Idempotency-Key``."""
    fault: Fault | None
    """The fault spent on it, if any."""


class _Link:
    """The service side of one agent connection."""

    def __init__(self) -> None:
        self.upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None


class _Closed(Exception):
    """A peer closed its side mid-message."""


async def _read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """One HTTP/1.1 message (head, body) with a Content-Length body; None at a clean EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise _Closed from exc
        return None
    except (ConnectionError, asyncio.LimitOverrunError) as exc:
        raise _Closed from exc
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding":
            raise AssertionError("the fault proxy does not handle chunked messages")
    try:
        body = await reader.readexactly(length) if length else b""
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise _Closed from exc
    return head, body


def _header(head: bytes, name: bytes) -> str:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return ""


def _response(status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return (
        f"HTTP/1.1 {status} Injected\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def _mismatch(body: bytes) -> bytes:
    reply = json.loads(body)
    results = reply["results"]
    results.pop()
    results.append({"event_id": "not-in-this-batch", "status": "accepted", "reason": None})
    return json.dumps(reply).encode()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """``with FaultProxy(upstream_port) as proxy:`` point the agent at ``proxy.url``."""

    def __init__(self, upstream_port: int, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream_port = upstream_port
        """Where requests go; may be changed while running (new connections use it)."""
        self.slow = 0.0
        """Seconds to hold every reply (not a fault: it keeps batches in flight)."""
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        """Most batch requests forwarded and not yet answered at one time."""
        self.held = threading.Event()
        """Set while a ``HOLD_REQUEST`` holds a request half sent."""
        self._lock = threading.Lock()
        self._armed: deque[Armed] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._handlers: set[asyncio.Task[None]] = set()

    # -- control (any thread) ---------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    def arm(
        self,
        fault: Fault,
        count: int = 1,
        *,
        delay: float = 0.0,
        status: int = 500,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Spend ``fault`` on the next ``count`` batch requests (after those already armed)."""
        with self._lock:
            self._armed.extend([Armed(fault, delay, status, headers)] * count)

    @property
    def pending(self) -> int:
        """Faults armed and not yet spent."""
        with self._lock:
            return len(self._armed)

    def keys(self) -> list[str]:
        """Idempotency keys of the batch requests seen, in order."""
        with self._lock:
            return [s.key for s in self.seen]

    def release_held(self) -> None:
        """Let a ``HOLD_REQUEST`` go on (it then resets the agent's connection)."""
        loop, release = self._loop, self._release
        assert loop is not None
        assert release is not None
        loop.call_soon_threadsafe(release.set)

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> Self:
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._release = asyncio.Event()
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, self.host, 0)
                )
                self._port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                errors.append(exc)
                started.set()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise TimeoutError("fault proxy did not start")
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            for _ in range(3):  # let the closed transports run their close callbacks
                await asyncio.sleep(0)
            loop.stop()

        loop.call_soon_threadsafe(lambda: loop.create_task(shutdown()))
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the proxy (its own event loop) ------------------------------------------

    def _take(self) -> Armed | None:
        with self._lock:
            return self._armed.popleft() if self._armed else None

    def _record(self, key: str, armed: Armed | None) -> None:
        with self._lock:
            self.seen.append(Seen(time.monotonic(), key, armed.fault if armed else None))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        conn = _Link()
        try:
            await self._serve(conn, reader, writer)
        except (_Closed, ConnectionError):
            _reset(writer)
        finally:
            self._handlers.discard(task)
            writer.close()
            if conn.upstream is not None:
                conn.upstream[1].close()

    async def _serve(
        self, conn: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Relay requests on one agent connection until it closes or a fault ends it."""
        while True:
            request = await _read_message(reader)
            if request is None:
                return
            head, body = request
            is_batch = head.startswith(b"POST /v1/batches ")
            armed = self._take() if is_batch else None
            if is_batch:
                self._record(_header(head, b"idempotency-key"), armed)
                self._count(+1)  # until its reply is forwarded (or the connection ends)
            try:
                if not await self._relay(conn, head, body, armed, writer, is_batch):
                    return
            finally:
                if is_batch:
                    self._count(-1)

    async def _relay(
        self,
        conn: _Link,
        head: bytes,
        body: bytes,
        armed: Armed | None,
        writer: asyncio.StreamWriter,
        is_batch: bool,
    ) -> bool:
        """Relay one request and its reply, applying ``armed``; False ends the connection."""
        fault = armed.fault if armed else None
        if fault is Fault.REFUSE:
            _reset(writer)
            return False
        if conn.upstream is None or conn.upstream[0].at_eof():
            if conn.upstream is not None:
                conn.upstream[1].close()
                conn.upstream = None
            try:
                conn.upstream = await asyncio.open_connection(self.host, self.upstream_port)
            except OSError:
                _reset(writer)  # the service is down: the agent sees a reset
                return False
        up_reader, up_writer = conn.upstream
        if fault is Fault.HOLD_REQUEST:
            up_writer.write(head + body[: len(body) // 2])
            await up_writer.drain()
            assert self._release is not None
            self._release.clear()
            self.held.set()
            await self._release.wait()
            self.held.clear()
            _reset(writer)
            _reset(up_writer)
            return False
        up_writer.write(head + body)
        await up_writer.drain()
        reply = await _read_message(up_reader)
        if reply is None:
            _reset(writer)  # the service went away without answering
            return False
        if self.slow and is_batch:
            await asyncio.sleep(self.slow)
        r_head, r_body = reply
        if fault is None:
            writer.write(r_head + r_body)
        elif fault is Fault.RESET_AFTER_REPLY:
            _reset(writer)
            return False
        elif fault is Fault.DELAY_REPLY:
            assert armed is not None
            await asyncio.sleep(armed.delay)
            writer.write(r_head + r_body)  # to a client that has long given up
        elif fault is Fault.STATUS:
            assert armed is not None
            writer.write(_response(armed.status, b'{"error":"injected"}', armed.headers))
        elif fault is Fault.TRUNCATE_REPLY:
            writer.write(r_head + r_body[: len(r_body) // 2])
            await writer.drain()
            writer.close()
            return False
        elif fault is Fault.GARBAGE_REPLY:
            writer.write(_response(200, b'{"batch_id": "x", "results": [}garbage'))
        elif fault is Fault.MISMATCH_REPLY:
            writer.write(_response(200, _mismatch(r_body)))
        await writer.drain()
        return True

    def _count(self, delta: int) -> None:
        with self._lock:
            self.in_flight += delta
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
