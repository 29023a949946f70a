"""How the TUI reaches the daemon: a small blocking interface, used only from worker threads.

:class:`SocketAgent` is the real one (the control socket).  Tests inject their
own :class:`AgentLink` (a fixed, in-memory agent) to take deterministic
snapshots.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from scanner_agent.control import ControlClient, ControlUnavailable, EventStream

log = logging.getLogger(__name__)


def start_thread(name: str, loop: Callable[[], None]) -> threading.Thread:
    """Run ``loop`` (one of the TUI's long-lived loops) on a thread of its own.

    Not Textual's thread workers: those borrow threads from asyncio's default
    executor, at most ``min(32, cores + 4)`` (six on a two-core till), and
    each dock holds its loops for as long as the TUI runs, so an overview of a
    few docks and the views opened from it would leave the next loops waiting
    for a thread that never comes free.  The thread runs in a copy of the
    caller's context (Textual's active app), as a worker would.
    """
    context = contextvars.copy_context()

    def run() -> None:
        try:
            context.run(loop)
        except Exception:
            log.exception("TUI thread %s failed", name)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


JOIN_S = 2.0
"""How long closing waits for the loops it stopped (each ends at once: its agent is closed)."""


def join_threads(threads: list[threading.Thread], within: float = JOIN_S) -> None:
    """Wait, at most ``within`` seconds in all, for ``threads`` to end (after they were told
    to stop), so none outlives its screen and reports into the next one."""
    deadline = time.monotonic() + within
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


class EventSource(Protocol):
    """A live event subscription."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Events until the agent hangs up (raises ``ControlUnavailable``) or :meth:`close`."""
        ...

    def close(self) -> None:
        """Stop; a thread blocked in iteration returns."""
        ...


class AgentLink(Protocol):
    """What the TUI needs from an agent; every call may block and raise ``ControlError``."""

    def call(self, cmd: str, /, **args: Any) -> Any:
        """One request; its result."""
        ...

    def events(self) -> EventSource:
        """Subscribe to scan and bill events."""
        ...

    def close(self) -> None:
        """Drop connections."""
        ...


class SocketAgent:
    """The daemon on its control socket: one request connection per calling thread.

    The TUI's threads (events, polling, commands) never wait on each other's
    requests: a slow ``bill.show`` does not hold up an ``undo``.
    """

    def __init__(self, path: str, *, timeout: float = 15.0) -> None:
        self.path = path
        self.timeout = timeout
        self._clients: dict[int, ControlClient] = {}
        self._lock = threading.Lock()
        self._closed = False

    def call(self, cmd: str, /, **args: Any) -> Any:
        """One request over this thread's connection.

        Raises:
            ControlUnavailable: after :meth:`close`, or the agent is unreachable.
        """
        with self._lock:
            if self._closed:
                raise ControlUnavailable("Failed to call the agent: the TUI is closing")
            client = self._clients.get(threading.get_ident())
            if client is None:
                client = ControlClient(self.path, timeout=self.timeout)
                self._clients[threading.get_ident()] = client
        try:
            return client.call(cmd, **args)
        finally:
            if self._closed:  # closed while this call (re)connected: its socket is left to close
                client.close()

    def events(self) -> EventStream:
        """A new subscription connection.

        Raises:
            ControlUnavailable: after :meth:`close`, or the agent is unreachable.
        """
        if self._closed:
            raise ControlUnavailable("Failed to subscribe: the TUI is closing")
        return EventStream(self.path, timeout=5.0)

    def close(self) -> None:
        """Close every request connection; later calls fail."""
        with self._lock:
            self._closed = True
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
