"""Which package is the sink of each ``sync.protocol``, and the one way a sink is built.

Every sink package offers the same two functions, so the daemon (and
anything else that needs a sink or its names) asks here instead of
switching on the protocol's name:

* ``build(settings, context) -> Sink``: the sink, from the agent's settings
  and the daemon's parts it shares (:class:`~scanner_agent.sync.SinkContext`);
* ``names(settings) -> SinkNames``: who it talks to and with what, in words;
* ``checks(settings, kit) -> Iterator[Finding]``: ``scanner-agent doctor``'s
  lines for the service and the credential (``_doctor.py``), named
  ``CHECK_NAMES``.

A package is imported when its protocol is asked for, never before: a
daemon syncing to the trace service loads no platform code.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, cast

from scanner_agent.kernel import ConfigError
from scanner_agent.sinks.trace_api import TraceApiSettings

if TYPE_CHECKING:
    from scanner_agent.sinks._doctor import DoctorKit, Finding
    from scanner_agent.sinks.alihealth import AliHealthSettings
    from scanner_agent.sinks.epcis import EpcisSettings
    from scanner_agent.sync import Sink, SinkContext, SinkNames

__all__ = [
    "SINK_PACKAGES",
    "AgentSettings",
    "SinkPackage",
    "build_sink",
    "sink_names",
    "sink_package",
]

SINK_PACKAGES: dict[str, str] = {
    "trace-api": "scanner_agent.sinks.trace_api",
    "alihealth": "scanner_agent.sinks.alihealth",
    "epcis": "scanner_agent.sinks.epcis",
}
"""``sync.protocol`` -> the package of its sink."""


class SyncSettings(TraceApiSettings, Protocol):
    """``[sync]`` as a sink reads it: the Trace API's keys (with the HTTP layer's) and the
    protocol that chose the sink."""

    @property
    def protocol(self) -> str: ...


class AgentSettings(Protocol):
    """What the sinks read of the agent's settings (:class:`scanner_agent.config.AgentConfig`):
    every sink package's own settings type in one (``TraceApiAgentSettings``,
    ``AliHealthAgentSettings``, ``EpcisAgentSettings``), which a sink declares itself so that
    it never imports this registry back."""

    @property
    def device_id(self) -> str: ...

    @property
    def sync(self) -> SyncSettings: ...

    @property
    def alihealth(self) -> AliHealthSettings: ...

    @property
    def epcis(self) -> EpcisSettings: ...


class SinkPackage(Protocol):
    """What every sink package offers (see the module docstring)."""

    SERVICE_CHECK: str
    """The doctor's name for the check of the service itself (``trace service``)."""
    CHECK_NAMES: tuple[str, str, str]
    """The doctor lines :meth:`checks` reports, in order."""

    def build(self, settings: AgentSettings, context: SinkContext) -> Sink: ...

    def names(self, settings: AgentSettings) -> SinkNames: ...

    def checks(self, settings: AgentSettings, kit: DoctorKit) -> Iterator[Finding]: ...


def sink_package(protocol: str) -> SinkPackage:
    """The package of ``protocol``'s sink, imported now.

    Raises:
        ConfigError: no sink speaks ``protocol`` (the config check refuses it first).
    """
    try:
        name = SINK_PACKAGES[protocol]
    except KeyError:
        known = ", ".join(SINK_PACKAGES)
        raise ConfigError(f"sync.protocol: expected one of {known}, got {protocol!r}") from None
    return cast(SinkPackage, importlib.import_module(name))


def build_sink(settings: AgentSettings, context: SinkContext) -> Sink:
    """The sink for ``settings.sync.protocol`` (``docs/platforms.md``)."""
    return sink_package(settings.sync.protocol).build(settings, context)


def sink_names(settings: AgentSettings) -> SinkNames:
    """:class:`~scanner_agent.sync.SinkNames` of the sink for ``settings.sync.protocol``."""
    return sink_package(settings.sync.protocol).names(settings)
