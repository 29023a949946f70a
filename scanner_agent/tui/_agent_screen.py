"""A screen attached to one agent: the worker threads that talk to it and the state they bring.

:class:`~scanner_agent.tui._dispatch_screen.DispatchScreen` draws it and adds
the clerk's keys.  It never blocks the loop on the agent.  Worker threads talk to it
(:class:`~scanner_agent.tui._agent.AgentLink`) and post messages back:

* the event worker holds a subscription, puts scan events into a bounded
  buffer and posts one coalescing :class:`ScansArrived` signal, so a flood of
  scans costs one redraw per frame, not one per scan; it reconnects by itself
  when the agent restarts;
* the poll worker fetches ``status`` (and the current bill) once a second,
  or at once when something changed;
* the command worker runs the operator's commands one after another; they
  come back as :class:`CommandDone` / :class:`CommandFailed`.

Three long-lived threads, whatever the scan rate: work is never piled up in
new threads while the agent is slow.
"""

from __future__ import annotations

import collections
import queue
import threading
from pathlib import Path
from typing import Any

from textual.screen import Screen

from scanner_agent.control import AgentStatus, ControlError, ControlUncertain, RemoteError
from scanner_agent.tui._agent import AgentLink, EventSource, join_threads, start_thread
from scanner_agent.tui._messages import (
    BillChanged,
    BillUpdated,
    CommandDone,
    CommandFailed,
    Connected,
    Disconnected,
    ScansArrived,
    StatusUpdated,
)


class AgentScreen(Screen[None]):
    """One agent's state on a screen, kept up to date by three worker threads."""

    def __init__(
        self, agent: AgentLink, *, poll_s: float, reconnect_s: float, stream_rows: int
    ) -> None:
        """Attach to ``agent``: ``status`` every ``poll_s``, a reconnect every
        ``reconnect_s``, at most ``stream_rows`` scan events held between two redraws."""
        super().__init__()
        self.agent = agent
        self.poll_s = poll_s
        self.reconnect_s = reconnect_s
        self.connected = False
        self.disconnect_reason = "connecting…"
        self.status: AgentStatus | None = None
        """The latest ``status`` (None before the first)."""
        self.bill_number: str | None = None
        """The bill shown: the open one, else the last one seen (its results keep arriving)."""
        self.bill_view: dict[str, Any] | None = None
        self.dropped = 0
        self._buffer: collections.deque[dict[str, Any]] = collections.deque(maxlen=stream_rows)
        self._signalled = False
        self._stopping = threading.Event()
        self._stream: EventSource | None = None
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._commands: queue.SimpleQueue[tuple[str, str, dict[str, Any]] | None] = (
            queue.SimpleQueue()
        )

    def start_workers(self) -> None:
        """Start the event, poll and command threads (once, when mounted)."""
        name = f"{type(self).__name__}:{id(self):x}"
        self._threads = [
            start_thread(f"{name}:events", self._event_loop),
            start_thread(f"{name}:poll", self._poll_loop),
            start_thread(f"{name}:commands", self._command_loop),
        ]

    def stop_workers(self) -> None:
        """Stop the workers and drop the agent's connections (when unmounted)."""
        self._stopping.set()
        self._wake.set()
        self._commands.put(None)
        stream = self._stream
        if stream is not None:
            stream.close()
        self.agent.close()
        join_threads(self._threads)

    # -- workers -----------------------------------------------------------------------

    def _event_loop(self) -> None:
        """Hold a subscription; reconnect after the agent goes away."""
        while not self._stopping.is_set():
            stream: EventSource | None = None
            try:
                stream = self.agent.events()
                hello = self.agent.call("hello")
            except ControlError as exc:
                if stream is not None:
                    stream.close()
                self.post_message(Disconnected(str(exc)))
                self._stopping.wait(self.reconnect_s)
                continue
            self._stream = stream
            if self._stopping.is_set():  # the app closed while this stream was opening
                stream.close()
                return
            self.post_message(Connected(hello))
            try:
                for event in stream:
                    kind = event.get("event")
                    if kind == "scan":
                        self._buffer.append(event)
                        if not self._signalled:
                            self._signalled = True
                            self.post_message(ScansArrived())
                    elif kind == "bill":
                        self.post_message(BillChanged(event))
                    elif kind == "dropped":
                        self.dropped += int(event.get("count", 0))
            except ControlError as exc:
                if not self._stopping.is_set():
                    self.post_message(Disconnected(str(exc)))
            finally:
                stream.close()
                self._stream = None
            self._stopping.wait(self.reconnect_s)

    def _poll(self) -> None:
        """Refresh status and the bill now."""
        self._wake.set()

    def _poll_loop(self) -> None:
        """``status`` and ``bill.show`` every ``poll_s``, or at once when woken."""
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.post_message(StatusUpdated(AgentStatus.from_json(self.agent.call("status"))))
                number = self.bill_number
                if number:
                    view = self.agent.call("bill.show", number=number, scans=100)
                    if number == self.bill_number:
                        self.post_message(BillUpdated(view))
            except RemoteError as exc:
                if exc.code == "not_found":
                    self.post_message(BillUpdated(None))
            except ControlError:
                pass  # the event worker reports the outage
            self._wake.wait(self.poll_s)

    def _command(self, what: str, cmd: str, args: dict[str, Any]) -> None:
        self._commands.put((what, cmd, args))

    def _command_loop(self) -> None:
        """The operator's commands, in order."""
        while True:
            item = self._commands.get()
            if item is None or self._stopping.is_set():
                return
            what, cmd, args = item
            try:
                if cmd == "@import":
                    args = self._read_import(args)
                    cmd = "bill.import"
                result = self.agent.call(cmd, **args)
            except ControlUncertain as exc:
                self.post_message(CommandFailed(what, str(exc), uncertain=True))
                continue
            except (ControlError, OSError, UnicodeDecodeError) as exc:
                self.post_message(CommandFailed(what, str(exc)))
                continue
            self.post_message(CommandDone(what, result))

    def _read_import(self, args: dict[str, Any]) -> dict[str, Any]:
        path = str(args["path"])
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ControlError(f"Failed to read {path!r}: {exc}") from exc
        out: dict[str, Any] = {"csv": text, "kind": args["kind"]}
        if args.get("number"):
            out["number"] = args["number"]
        return out

    def _import(self, path: str, kind: str) -> None:
        args = {"path": path, "kind": kind}
        if kind == "expected" and self.bill_number:
            args["number"] = self.bill_number
        self._command("import", "@import", args)

    def lookup(self, code: str) -> None:
        """Run a code lookup (the search dialog shows the answer)."""
        self._command("lookup", "lookup", {"code": code})
