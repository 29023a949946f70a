"""An ASGI app served by uvicorn in a background thread: the reference trace
service in tests and the demo, and the platform emulators.

One place for the fiddly parts: waiting until the socket is really bound (no
fixed sleeps), reporting a failed bind, the real port when asked for port 0,
optional TLS, and a :meth:`ServerThread.kill` that resets open connections the
way a crashed server would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import uvicorn

__all__ = ["ServerThread", "uvicorn_config"]


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
) -> uvicorn.Config:
    """uvicorn settings for an embedded service: quiet, no lifespan, no websockets.

    ``date_header=False`` leaves the ``Date`` header to the app (an emulator with a clock
    of its own).
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        **(tls or {}),
        log_level="warning",
        access_log=False,
        log_config=None,  # leave the host process's logging set-up alone
        lifespan="off",
        ws="none",
        server_header=False,
        date_header=date_header,
        timeout_graceful_shutdown=5,
    )


class ServerThread:
    """Serve ``app`` on ``host:port`` (0 = a free port) until :meth:`stop`.

    ::

        with ServerThread(app) as server:
            httpx.get(server.url + "/")

    ``tls`` holds uvicorn's ``ssl_*`` options; with them :attr:`url` is ``https://``.
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
    ) -> None:
        self._app = app
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
            RuntimeError: the server could not start (e.g. the port is taken).
            TimeoutError: it did not start within ``startup_timeout``.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self._name} already started")
        server = _Server(
            uvicorn_config(
                self._app, self._host, self._port, self._tls, date_header=self._date_header
            )
        )
        thread = threading.Thread(target=self._run, args=(server,), name=self._name, daemon=True)
        self._server, self._thread = server, thread
        try:
            thread.start()
            deadline = time.monotonic() + self._startup_timeout
            while not server.started:
                if not thread.is_alive():
                    raise RuntimeError(
                        f"{self._name} failed to start on {self._host}:{self._port}"
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
