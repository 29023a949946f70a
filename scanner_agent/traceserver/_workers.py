"""``trace-server --workers N``: N stateless worker processes on one listening socket.

The parent binds the address once and starts the workers (``spawn``: fresh
interpreters, nothing inherited but the socket and the settings, which travel
through multiprocessing's pipe, never argv or the environment, as the token is
in them).  The kernel hands each new connection to one worker.  A worker keeps
no state of its own: every answer comes from the PostgreSQL database, where a
lock on the batch id (:mod:`._pgstore`) makes copies of one batch arriving at
two workers store it once and get the same reply, while different batches are
stored side by side; so workers on other machines behind a load balancer
behave alike.

SIGINT or SIGTERM stops the workers gracefully (each finishes its requests);
a worker that dies unexpectedly stops the service with an error, for the
supervisor (systemd) to restart it whole.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from scanner_agent.asgi import ServerStartError, format_address
from scanner_agent.kernel import parse_host_port

__all__ = ["WorkerSettings", "serve_workers"]

log = logging.getLogger("scanner_agent.traceserver")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """What each worker needs to serve: the database, the token and the app's options."""

    db: str
    token: str | None = field(repr=False)
    app_options: dict[str, Any] = field(default_factory=dict)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Installed before uvicorn's own handlers: its re-raise of the stop signal lands here."""


def _worker(settings: WorkerSettings, sock: socket.socket) -> None:
    """One worker process: its own store (a connection pool) and uvicorn on the shared socket."""
    import uvicorn

    from scanner_agent.asgi import uvicorn_config
    from scanner_agent.interpreter import tune_interpreter
    from scanner_agent.traceserver._app import create_app
    from scanner_agent.traceserver._backends import open_store

    tune_interpreter()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _ignore)
    store = open_store(settings.db)
    try:
        app = create_app(store, settings.token, **settings.app_options)
        host, port = sock.getsockname()[:2]
        uvicorn.Server(uvicorn_config(app, host, port)).run(sockets=[sock])
    finally:
        store.close()


def serve_workers(listen: str, settings: WorkerSettings, workers: int) -> None:
    """Serve Trace API v1 on ``listen`` with ``workers`` processes; blocks until SIGINT/SIGTERM.

    Call it from the main thread.  Raises ServerStartError when the address cannot be
    bound, RuntimeError when a worker dies.
    """
    from scanner_agent.traceserver._backends import is_postgres, open_store

    if workers < 1:
        raise ValueError(f"workers must be >= 1, not {workers}")
    if not is_postgres(settings.db):
        raise ValueError("--workers needs a postgresql:// database (SQLite has one writer)")
    open_store(settings.db).close()  # a database not migrated is refused here, once
    host, port = parse_host_port(listen, "listen", default_host="0.0.0.0")  # noqa: S104 - an empty host asks for every interface
    try:
        sock = socket.create_server((host, port), backlog=1024)
    except OSError as exc:
        raise ServerStartError(format_address(host, port), exc.strerror or str(exc)) from exc
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker, args=(settings, sock), name=f"trace-worker-{n}")
        for n in range(workers)
    ]
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for process in processes:
            process.start()
        # The bound address, not the one asked for: --listen HOST:0 says which port it got.
        bound = format_address(*sock.getsockname()[:2])
        log.info("trace service listening on http://%s with %d workers", bound, workers)
        while not stop.wait(0.5):
            dead = [p for p in processes if not p.is_alive()]
            if dead:
                raise RuntimeError(f"trace worker {dead[0].name} exited ({dead[0].exitcode})")
        log.info("trace service stopping")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(15)
            if process.is_alive():
                process.kill()
                process.join()
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
