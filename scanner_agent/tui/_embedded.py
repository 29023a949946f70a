"""A daemon on its own event loop in a background thread, for ``tui --embedded`` and the demo."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from scanner_agent.config import AgentConfig
from scanner_agent.daemon import Daemon
from scanner_agent.kernel import ScannerAgentError


class BackgroundLoop:
    """Runs one coroutine on a fresh event loop in a daemon thread."""

    def __init__(self, main: Callable[[], Awaitable[None]], *, name: str = "agent") -> None:
        self._main = main
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # handed to the caller through .error
            self.error = exc
        finally:
            loop.close()
            self.finished.set()

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the coroutine to end."""
        self._thread.join(timeout)


class EmbeddedAgent:
    """A whole daemon (sources, outbox, sync, control socket) beside the TUI."""

    def __init__(self, cfg: AgentConfig) -> None:
        self.daemon: Daemon | None = None
        self._cfg = cfg
        self._ready = threading.Event()
        self._runner = BackgroundLoop(self._main, name="embedded agent")

    async def _main(self) -> None:
        self.daemon = Daemon(self._cfg)
        await self.daemon.run(on_ready=self._ready.set)

    def start(self, timeout: float = 60.0) -> None:
        """Start the daemon and wait until it is ready.

        Raises:
            ScannerAgentError: it failed to start.
        """
        self._runner.start()
        while not self._ready.wait(0.05):
            if self._runner.finished.is_set():
                err = self._runner.error
                if isinstance(err, ScannerAgentError):
                    raise err
                raise ScannerAgentError(f"Failed to start the embedded agent: {err!r}")
            timeout -= 0.05
            if timeout <= 0:
                raise ScannerAgentError("Failed to start the embedded agent: not ready in time")

    def stop(self) -> None:
        """Stop the daemon cleanly and wait for it."""
        loop, daemon = self._runner.loop, self.daemon
        if loop is not None and daemon is not None and not self._runner.finished.is_set():
            loop.call_soon_threadsafe(daemon.request_stop)
        self._runner.join(60)
