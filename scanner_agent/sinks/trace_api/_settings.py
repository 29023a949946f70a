"""The Trace API v1 sink's keys of the ``[sync]`` table, and their one check.

``[sync]`` is one table (its keys are a contract older than the platforms):
the config reads it into its ``SyncConfig``, which holds the sync loop's
batching and retry keys, the HTTP layer's timeouts and TLS, and these.
:class:`TraceApiSettings` is what the Trace API client reads of it, and
:func:`check_settings` refuses what Trace API v1 cannot take.
"""

from __future__ import annotations

from typing import Protocol

from scanner_agent.sinks._settings import check_url, require

__all__ = ["MAX_BATCH_EVENTS", "TraceApiSettings", "check_settings"]

MAX_BATCH_EVENTS = 50_000
"""Most events in one ``POST /v1/batches`` (docs/trace-api.md)."""


class TraceApiSettings(Protocol):
    """What the Trace API v1 client and its sink read of ``[sync]``."""

    @property
    def url(self) -> str: ...
    @property
    def token_file(self) -> str: ...
    @property
    def token_env(self) -> str: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def gzip(self) -> bool: ...
    @property
    def gzip_level(self) -> int: ...
    @property
    def max_in_flight(self) -> int: ...
    @property
    def connect_timeout_s(self) -> float: ...
    @property
    def read_timeout_s(self) -> float: ...
    @property
    def write_timeout_s(self) -> float: ...
    @property
    def verify_tls(self) -> bool: ...
    @property
    def ca_bundle(self) -> str: ...
    @property
    def client_cert(self) -> str: ...
    @property
    def client_key(self) -> str: ...

    def read_token(self) -> str:
        """The bearer token from ``token_file`` or ``token_env`` (empty: none)."""
        ...


def check_settings(sync: TraceApiSettings) -> None:
    """Refuse ``[sync]`` keys Trace API v1 cannot work with (whatever ``sync.protocol`` is:
    the keys are read, and a later switch back must not find them broken).

    Raises:
        ConfigError: naming the first ``sync.<key>`` refused.
    """
    check_url("sync.url", sync.url)
    require(
        not (sync.token_file and sync.token_env),
        "sync.token_file",
        "set either token_file or token_env, not both",
    )
    require(
        sync.batch_size <= MAX_BATCH_EVENTS,
        "sync.batch_size",
        f"must be <= {MAX_BATCH_EVENTS} (Trace API v1 limit)",
    )
    require(1 <= sync.gzip_level <= 9, "sync.gzip_level", "must be from 1 to 9")
