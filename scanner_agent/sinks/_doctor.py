"""What ``scanner-agent doctor`` asks of a sink: is its service there, and does it take the
credential?  Each sink package answers for its protocol (its ``_doctor.py``).

A sink's checks make one real, read-only call to the configured service and
report what they saw as :class:`Finding` s; ``doctor`` (which owns the report,
the credential-file rules and the clock rule) gives them a :class:`DoctorKit`
and turns the findings into its report lines.  So a sink knows its protocol's
probe and nothing of how the report is printed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, NamedTuple, Protocol

__all__ = ["DoctorKit", "Finding", "FindingStatus"]

FindingStatus = Literal["ok", "warn", "fail", "skip"]


class Finding(NamedTuple):
    """One line of the doctor's report, as a sink's check found it."""

    name: str
    """The check's name: ``trace service``, ``token``, ``码上放心 gateway``, ``clock``."""
    status: FindingStatus
    detail: str
    """What it saw; never a credential."""
    hint: str = ""
    """What to do about it (empty when ok)."""


class DoctorKit(Protocol):
    """What ``doctor`` lends a sink's checks: its rules for credentials and the clock, and
    where and when to make the call."""

    @property
    def timeout_s(self) -> float:
        """Timeout of the one HTTP call."""
        ...

    @property
    def transport(self) -> Any:
        """An ``httpx.BaseTransport`` to call through instead of the network (tests), or None."""
        ...

    def now(self) -> datetime:
        """This box's clock (aware)."""
        ...

    def credential(
        self, name: str, path: str, env: str, read: Callable[[], str]
    ) -> tuple[Finding | None, str]:
        """The credential's finding and, when it is fine, its value (``(None, "")``: none
        configured).  ``read`` is the agent's own reader, so doctor refuses what ``run`` does."""
        ...

    def clock(self, date_header: str | None, now: datetime) -> Finding:
        """The ``clock`` finding from the service's ``Date`` header."""
        ...
