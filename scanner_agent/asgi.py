"""An ASGI app served by uvicorn in a background thread: the reference trace
service in tests and the demo, and the platform emulators.

One place for the fiddly parts: waiting until the socket is really bound (no
fixed sleeps), reporting a failed bind, the real port when asked for port 0,
optional TLS, and a :meth:`ServerThread.kill` that resets open connections the
way a crashed server would.

And one place for the limits every embedded server keeps, whoever connects:
uvicorn's own (connections at once, :data:`LIMIT_CONCURRENCY`, beyond which a
request gets 503; the idle time between requests, :data:`KEEP_ALIVE_S`; the
size of a request head, :data:`MAX_HEAD_BYTES`) and one it lacks, a deadline
for each request head (:data:`HEAD_TIMEOUT_S`): uvicorn re-arms its keep-alive
timer on every byte, so a client trickling a head would hold its connection
(and a slot of the limit) for ever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Self

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from scanner_agent.kernel import ScannerAgentError

__all__ = [
    "HEAD_TIMEOUT_S",
    "KEEP_ALIVE_S",
    "LIMIT_CONCURRENCY",
    "MAX_HEAD_BYTES",
    "ServerStartError",
    "ServerThread",
    "uvicorn_config",
]

LIMIT_CONCURRENCY = 256
"""Connections (or requests in progress) at once; more get ``503 Service Unavailable``."""
KEEP_ALIVE_S = 5
"""An idle kept-alive connection is closed after this many seconds (uvicorn's default)."""
MAX_HEAD_BYTES = 16 * 1024
"""Largest request line plus headers (h11's default); a larger head gets 400 and a close."""
HEAD_TIMEOUT_S = 10.0
"""A connection must send each request's head within this, however it trickles it."""


_HEAD_TOO_LARGE: Final = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 24\r\n\r\nRequest head too large.\n"
)


class _HeadDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline and a size limit for each request head.

    A timer starts when the connection opens and again when each answer is
    out.  When it fires and no request is in progress (the head has not ended),
    the connection is closed.  A request in progress is left to the
    application, which bounds its body itself.

    h11's ``max_incomplete_event_size`` bounds only a head it is still waiting
    for: one that arrives whole in a single read (64 KiB and more) passed.  So
    the bytes of each head are counted here as they arrive, up to its blank
    line, and one over :data:`MAX_HEAD_BYTES` is answered 400 and closed.
    """

    head_timeout_s = HEAD_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._next_head()
        self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._next_head()
        self._arm_head_timer()

    def _next_head(self) -> None:
        """The bytes that arrive from now on are a request head, until its blank line."""
        self._head_bytes = 0
        self._head_tail = b""
        self._in_head = True

    def data_received(self, data: bytes) -> None:
        if self._in_head and not self._head_fits(data):
            self.logger.warning("Request head larger than %d bytes.", MAX_HEAD_BYTES)
            self.transport.write(_HEAD_TOO_LARGE)
            self.transport.close()
            return
        super().data_received(data)

    def _head_fits(self, data: bytes) -> bool:
        """Count ``data`` into the current head; False once the head passes the limit."""
        window = self._head_tail + data  # a blank line may straddle two reads
        end = window.find(b"\r\n\r\n")
        if end < 0:
            self._head_bytes += len(data)
            self._head_tail = window[-3:]
        else:
            self._head_bytes += end + 4 - len(self._head_tail)
            self._in_head = False  # the rest is a body (or a pipelined request: h11 bounds it)
        return self._head_bytes <= MAX_HEAD_BYTES

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        if not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_overdue)

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()


class ServerStartError(ScannerAgentError):
    """The server could not start on its address: ``str()`` names the address and the reason."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"Failed to listen on {address}: {reason}")
        self.address = address
        self.reason = reason


def _bind_reason(exc: BaseException | None) -> str:
    """Why a bind failed, from the chain uvicorn leaves (its ``SystemExit`` hides the OSError)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno:
            return os.strerror(exc.errno)
        exc = exc.__cause__ or exc.__context__
    return "the server exited during start-up"


class _BindErrorFilter(logging.Filter):
    """Drops uvicorn's own log of a failed bind (the record's ``msg`` is the ``OSError``).

    :meth:`ServerThread.start` raises :class:`ServerStartError` for it, naming the
    address; uvicorn's line would say the same thing a second time, worded otherwise.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not isinstance(record.msg, OSError)


logging.getLogger("uvicorn.error").addFilter(_BindErrorFilter())


def format_address(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets (``[::1]:9100``), as the config writes it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server, which on a forced exit resets the connections still open.

    Left alone they would outlive the server's event loop, half-served.
    """

    async def shutdown(self, sockets: Any = None) -> None:
        if self.force_exit:
            for connection in list(self.server_state.connections):
                connection.transport.abort()
        await super().shutdown(sockets)


def uvicorn_config(
    app: Any,
    host: str,
    port: int,
    tls: Mapping[str, Any] | None = None,
    *,
    date_header: bool = True,
    limit_concurrency: int = LIMIT_CONCURRENCY,
    head_timeout_s: float = HEAD_TIMEOUT_S,
) -> uvicorn.Config:
    """uvicorn settings for an embedded service: quiet, no lifespan, no websockets, bounded.

    ``date_header=False`` leaves the ``Date`` header to the app (an emulator with a clock
    of its own).
    """
    protocol = type("_Http", (_HeadDeadline,), {"head_timeout_s": head_timeout_s})
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        **(tls or {}),
        http=protocol,
        log_level="warning",
        access_log=False,
        log_config=None,  # leave the host process's logging set-up alone
        lifespan="off",
        ws="none",
        server_header=False,
        date_header=date_header,
        timeout_graceful_shutdown=5,
        limit_concurrency=limit_concurrency,
        timeout_keep_alive=KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
    )


class ServerThread:
    """Serve ``app`` on ``host:port`` (0 = a free port) until :meth:`stop`.

    ::

        with ServerThread(app) as server:
            httpx.get(server.url + "/")

    ``tls`` holds uvicorn's ``ssl_*`` options; with them :attr:`url` is ``https://``.
    ``limit_concurrency`` and ``head_timeout_s`` override :data:`LIMIT_CONCURRENCY`
    and :data:`HEAD_TIMEOUT_S`.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: Mapping[str, Any] | None = None,
        startup_timeout: float = 10.0,
        name: str = "asgi-server",
        date_header: bool = True,
        limit_concurrency: int = LIMIT_CONCURRENCY,
        head_timeout_s: float = HEAD_TIMEOUT_S,
    ) -> None:
        self._app = app
        self._limit_concurrency = limit_concurrency
        self._head_timeout_s = head_timeout_s
        self._host = host
        self._port = port
        self._tls = dict(tls or {})
        self._startup_timeout = startup_timeout
        self._name = name
        self._date_header = date_header
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (``https://`` with TLS), no trailing slash (only while running)."""
        if self._url is None:
            raise RuntimeError(f"{self._name} is not running")
        return self._url

    @property
    def port(self) -> int:
        """The port actually listened on (only while running)."""
        return int(self.url.rpartition(":")[2])

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`, while the thread lives."""
        return self._url is not None and self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Start the server and wait until it accepts connections.

        Raises:
            ServerStartError: the server could not start (e.g. the port is taken).
            TimeoutError: it did not start within ``startup_timeout``.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self._name} already started")
        server = _Server(
            uvicorn_config(
                self._app,
                self._host,
                self._port,
                self._tls,
                date_header=self._date_header,
                limit_concurrency=self._limit_concurrency,
                head_timeout_s=self._head_timeout_s,
            )
        )
        thread = threading.Thread(target=self._run, args=(server,), name=self._name, daemon=True)
        self._server, self._thread = server, thread
        try:
            thread.start()
            deadline = time.monotonic() + self._startup_timeout
            while not server.started:
                if not thread.is_alive():
                    raise ServerStartError(
                        format_address(self._host, self._port), _bind_reason(self._error)
                    ) from self._error
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{self._name} did not start within {self._startup_timeout} s"
                    )
                time.sleep(0.005)
            sockname = server.servers[0].sockets[0].getsockname()
            host = f"[{sockname[0]}]" if ":" in sockname[0] else sockname[0]
            scheme = "https" if self._tls else "http"
            self._url = f"{scheme}://{host}:{sockname[1]}"
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self, server: Any) -> None:
        try:
            server.run()
        except BaseException as exc:  # SystemExit from a failed bind: start() reports it
            self._error = exc

    def kill(self) -> None:
        """Stop at once, resetting every open connection: a crash, as clients see it."""
        if self._server is not None:
            self._server.force_exit = True
        self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and wait for its thread; idempotent."""
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout)
        self._server = self._thread = None
        self._url = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
