"""What the sync loop reads of the ``[sync]`` table (the config's ``SyncConfig`` has it)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["LoopSettings"]


class LoopSettings(Protocol):
    """The sync loop's keys: batching, pipelining, retry, leases and the credential's re-reads.

    The request timeouts are read too: a lease must outlast the longest a
    request may take, or a slow reply would find its rows handed out again.
    """

    @property
    def enabled(self) -> bool: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def batch_bytes(self) -> int: ...
    @property
    def max_in_flight(self) -> int: ...
    @property
    def idle_poll_s(self) -> float: ...
    @property
    def backoff_initial_s(self) -> float: ...
    @property
    def backoff_max_s(self) -> float: ...
    @property
    def lease_s(self) -> float: ...
    @property
    def token_poll_s(self) -> float: ...
    @property
    def connect_timeout_s(self) -> float: ...
    @property
    def read_timeout_s(self) -> float: ...
    @property
    def write_timeout_s(self) -> float: ...

    def read_token(self) -> str:
        """The credential, when the loop is not given a reader of its own."""
        ...
