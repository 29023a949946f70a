"""What the control server needs from the agent it serves: a small protocol, not the daemon.

The server answers requests by calling these and nothing else, so it can be
read (and tested) without the daemon, and the daemon, which is above the
control package, is never imported by it.  :class:`scanner_agent.daemon.Daemon`
is the one implementation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from scanner_agent.bills import BillDesk
    from scanner_agent.kernel import Lane
    from scanner_agent.outbox import QueueStats
    from scanner_agent.status import AgentStatus


class ControlledAgent(Protocol):
    """The agent as the control server sees it."""

    @property
    def device_id(self) -> str:
        """This device's id (``hello``)."""
        ...

    @property
    def desk(self) -> BillDesk | None:
        """The bill desk, or None while the agent starts or stops (requests are refused)."""
        ...

    @property
    def control_lane(self) -> Lane:
        """Where control work of some cost runs: long lines decoded, codes parsed, CSV read."""
        ...

    async def agent_status(self, max_age_s: float = 0.0) -> AgentStatus:
        """The ``status`` result, typed (the server sends its JSON form)."""
        ...

    async def queue_stats(self, max_age_s: float = 0.0) -> QueueStats:
        """Outbox counts no older than ``max_age_s``."""
        ...

    def route_of(self, source: str) -> tuple[str, str]:
        """``(action, bill)`` a source's next scan gets."""
        ...

    def source_actions(self) -> list[str]:
        """The action of each source's scans."""
        ...

    async def acknowledge(self, bill: str, note: str) -> list[dict[str, str]]:
        """Clear the platform's alarm about ``bill``; the problems cleared."""
        ...
