"""Running the reference trace service: in the foreground (CLI) or a background thread (tests)."""

from __future__ import annotations

import logging
import signal
import ssl
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

from scanner_agent.asgi import HEAD_TIMEOUT_S, LIMIT_CONCURRENCY, ServerThread
from scanner_agent.interpreter import tune_interpreter
from scanner_agent.kernel import parse_host_port
from scanner_agent.traceserver._app import create_app
from scanner_agent.traceserver._backends import open_store
from scanner_agent.traceserver._faults import Faults
from scanner_agent.traceserver._ingest import BatchStore
from scanner_agent.traceserver._store import Synchronous

__all__ = ["TraceServerThread", "serve"]

log = logging.getLogger("scanner_agent.traceserver")


def serve(
    listen: str,
    db_path: str | Path,
    token: str | None,
    *,
    synchronous: Synchronous = "NORMAL",
    **app_options: Any,
) -> None:
    """Serve Trace API v1 on ``listen`` (``HOST:PORT``) from the SQLite file ``db_path``; blocks.

    ``synchronous`` goes to :class:`TraceStore`; ``app_options`` to
    :class:`TraceServerThread` (``limit_concurrency``, ``head_timeout_s``) and
    :func:`create_app` (``max_body_bytes``, ``max_events``, ``body_timeout_s``,
    ``reject_codes``, ``faults``).  Call it from the main thread: SIGINT or SIGTERM stops the
    server gracefully, closes the store and makes it return normally.
    Raises RuntimeError if the server cannot start (e.g. the port is taken).
    """
    host, port = parse_host_port(listen, "listen", default_host="0.0.0.0")  # noqa: S104 - an empty host asks for every interface
    tune_interpreter()  # request workers run SQLite beside the event loop, as in the agent
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # uvicorn runs in a worker thread, where it leaves signals alone; in the
    # main thread it would re-raise the signal after shutting down and the
    # process would die before the store is closed.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server = TraceServerThread(
            db_path, token, host=host, port=port, synchronous=synchronous, **app_options
        )
        with server:
            log.info("trace service listening on %s, store %s", server.url, server.store.path)
            while not stop.wait(0.5):
                if not server.running:
                    raise RuntimeError("trace server stopped unexpectedly")
            log.info("trace service stopping")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class TraceServerThread:
    """The reference trace service on loopback in a background thread.

    ::

        with TraceServerThread(tmp_path / "trace.db", "secret") as trace:
            httpx.post(trace.url + "/v1/batches", ...)
            trace.faults.unavailable(2)
            trace.store.count_events()

    ``port`` 0 (default) picks a free port; :attr:`url` holds the real one.
    ``app_options`` go to :func:`create_app`; pass ``faults`` to share a
    :class:`Faults` object, otherwise a new one is made.

    HTTPS: ``ssl_certfile`` (PEM certificate chain, may hold the key too) and
    ``ssl_keyfile`` turn TLS on and :attr:`url` becomes ``https://``;
    ``ssl_ca_certs`` with ``ssl_cert_reqs=ssl.CERT_REQUIRED`` demands a client
    certificate signed by those CAs (mutual TLS).  They go to uvicorn as given.

    ``limit_concurrency`` and ``head_timeout_s`` bound connections
    (:mod:`scanner_agent.asgi`); ``body_timeout_s``, like every other
    ``app_options`` key, goes to :func:`create_app`.
    """

    def __init__(
        self,
        db_path: str | Path,
        token: str | None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        synchronous: Synchronous = "NORMAL",
        startup_timeout: float = 10.0,
        ssl_certfile: str | Path | None = None,
        ssl_keyfile: str | Path | None = None,
        ssl_ca_certs: str | Path | None = None,
        ssl_cert_reqs: int = ssl.CERT_NONE,
        limit_concurrency: int = LIMIT_CONCURRENCY,
        head_timeout_s: float = HEAD_TIMEOUT_S,
        **app_options: Any,
    ) -> None:
        self._db_path = db_path
        self._limit_concurrency = limit_concurrency
        self._head_timeout_s = head_timeout_s
        self._tls: dict[str, Any] = {}
        if ssl_certfile is not None:
            self._tls = {
                "ssl_certfile": str(ssl_certfile),
                "ssl_keyfile": None if ssl_keyfile is None else str(ssl_keyfile),
                "ssl_ca_certs": None if ssl_ca_certs is None else str(ssl_ca_certs),
                "ssl_cert_reqs": ssl_cert_reqs,
            }
        self._token = token
        self._host = host
        self._port = port
        self._synchronous: Synchronous = synchronous
        self._startup_timeout = startup_timeout
        faults = app_options.pop("faults", None)
        self._faults: Faults = Faults() if faults is None else faults
        self._app_options = app_options
        self._store: BatchStore | None = None
        self._http: ServerThread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https://`` with TLS), no trailing slash (only while running)."""
        if self._http is None:
            raise RuntimeError("trace server is not running")
        return self._http.url

    @property
    def port(self) -> int:
        """The port actually listened on (only while running)."""
        return int(self.url.rpartition(":")[2])

    @property
    def store(self) -> BatchStore:
        """The store the server writes to (only while running)."""
        if self._store is None:
            raise RuntimeError("trace server is not running")
        return self._store

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`, while the server thread lives."""
        return self._http is not None and self._http.running

    @property
    def faults(self) -> Faults:
        """Fault hooks of this server; arm them at any time."""
        return self._faults

    def start(self) -> Self:
        """Open the store, start the server and wait until it accepts connections."""
        if self._http is not None:
            raise RuntimeError("trace server already started")
        store = open_store(self._db_path, synchronous=self._synchronous)
        self._store = store
        try:
            app = create_app(store, self._token, faults=self._faults, **self._app_options)
            self._http = ServerThread(
                app,
                host=self._host,
                port=self._port,
                tls=self._tls,
                startup_timeout=self._startup_timeout,
                name="trace server",
                limit_concurrency=self._limit_concurrency,
                head_timeout_s=self._head_timeout_s,
            ).start()
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self) -> None:
        """Stop at once, resetting every open connection: a crash, as clients see it.

        A request still arriving is cut off; the store stays consistent (every
        batch is one SQLite transaction) and is closed.  Idempotent.
        """
        if self._http is not None:
            self._http.kill()
        self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server, wait for its thread and close the store; idempotent."""
        http, store = self._http, self._store
        if http is not None:
            http.stop(timeout)
        if store is not None:
            store.close()
        self._http = self._store = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
