"""The Trace API v1 sink's keys of the ``[sync]`` table, and their one check.

``[sync]`` is one table (its keys are a contract older than the platforms):
the config reads it into its ``SyncConfig``, which holds the sync loop's
batching and retry keys, the HTTP layer's timeouts and TLS, and these.
:class:`TraceApiSettings` is what the Trace API client reads of it, and
:func:`check_settings` refuses what Trace API v1 cannot take.
"""

from __future__ import annotations

from typing import Protocol

from scanner_agent.sinks._settings import HttpSettings, check_url, require

__all__ = ["MAX_BATCH_EVENTS", "TraceApiAgentSettings", "TraceApiSettings", "check_settings"]

MAX_BATCH_EVENTS = 50_000
"""Most events in one ``POST /v1/batches`` (docs/trace-api.md)."""


class TraceApiSettings(HttpSettings, Protocol):
    """What the Trace API v1 client and its sink read of ``[sync]``: the HTTP layer's keys
    and these."""

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

    def read_token(self) -> str:
        """The bearer token from ``token_file`` or ``token_env`` (empty: none)."""
        ...


class TraceApiAgentSettings(Protocol):
    """What the Trace API sink (``build``, ``names``) and its doctor checks read of the
    agent's settings: declared here, so the sink depends on its own settings and not on
    the registry that names it (:data:`scanner_agent.sinks.SINK_PACKAGES`)."""

    @property
    def device_id(self) -> str: ...
    @property
    def sync(self) -> TraceApiSettings: ...


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
