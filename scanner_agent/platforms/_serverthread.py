"""A Starlette/ASGI app served by uvicorn on loopback in a background thread (emulators, tests)."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn

__all__ = ["ServerThread"]


class ServerThread:
    """Serve ``app`` on ``host:port`` (0 = a free port) until :meth:`stop`.

    ::

        with ServerThread(app) as server:
            httpx.get(server.url + "/")
    """

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 10.0
    ) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._startup_timeout = startup_timeout
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, no trailing slash (only while running)."""
        if self._url is None:
            raise RuntimeError("server is not running")
        return self._url

    def start(self) -> Self:
        """Start the server and wait until it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        config = uvicorn.Config(
            self._app,
            host=self._host,
            port=self._port,
            log_level="warning",
            access_log=False,
            log_config=None,
            lifespan="off",
            ws="none",
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=self._run, args=(server,), name="emulator", daemon=True)
        self._server, self._thread = server, thread
        try:
            thread.start()
            deadline = time.monotonic() + self._startup_timeout
            while not server.started:
                if not thread.is_alive():
                    raise RuntimeError(
                        f"server failed to start on {self._host}:{self._port}"
                    ) from self._error
                if time.monotonic() > deadline:
                    raise TimeoutError(f"server did not start within {self._startup_timeout} s")
                time.sleep(0.005)
            sockname = server.servers[0].sockets[0].getsockname()
            self._url = f"http://{sockname[0]}:{sockname[1]}"
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self, server: Any) -> None:
        try:
            server.run()
        except BaseException as exc:  # SystemExit from a failed bind: start() reports it
            self._error = exc

    def stop(self, timeout: float = 5.0) -> None:
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
