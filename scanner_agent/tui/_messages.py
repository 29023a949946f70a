"""Messages the TUI's worker threads post to the app (dataclasses; high-rate ones coalesce)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from scanner_agent.control import AgentStatus


@dataclass
class Connected(Message):
    """The event stream is attached to an agent."""

    hello: dict[str, Any]


@dataclass
class Disconnected(Message):
    """The agent cannot be reached; the workers keep trying."""

    reason: str


@dataclass
class ScansArrived(Message):
    """New scan events are waiting in the app's buffer (a signal: many collapse into one)."""

    def can_replace(self, message: Message) -> bool:
        """Only the latest signal matters: the handler drains the whole buffer."""
        return isinstance(message, ScansArrived)


@dataclass
class BillChanged(Message):
    """A bill was opened, closed, changed (from here, the CLI or another TUI)."""

    event: dict[str, Any]


@dataclass
class StatusUpdated(Message):
    """A fresh ``status`` result."""

    status: AgentStatus

    def can_replace(self, message: Message) -> bool:
        """An older status is worthless once a newer one is queued."""
        return isinstance(message, StatusUpdated)


@dataclass
class BillUpdated(Message):
    """A fresh ``bill.show`` result (``None``: the bill is gone or none is known)."""

    view: dict[str, Any] | None

    def can_replace(self, message: Message) -> bool:
        """Only the newest view is drawn."""
        return isinstance(message, BillUpdated)


@dataclass
class CommandDone(Message):
    """A command the operator gave succeeded."""

    what: str
    result: Any


@dataclass
class CommandFailed(Message):
    """A command the operator gave failed; ``message`` says why.

    ``uncertain``: it reached the agent and its reply was lost (the agent
    restarted): it may have been done, and the clerk is told to check.
    """

    what: str
    message: str
    uncertain: bool = False
