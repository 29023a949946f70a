"""GS1 EPCIS 2.0 capture: scans as ``ObjectEvent`` s, cartons also as ``AggregationEvent`` s.

The sink of ``sync.protocol = "epcis"``.  Its parts:

* :mod:`._settings`: the ``[epcis]`` table and its one check;
* :mod:`._document`: the capture documents, pure (deterministic event ids);
* :mod:`._job`: capture jobs parsed and settled into per-event verdicts, pure;
* :mod:`._client`: :class:`EpcisCaptureClient`, ``POST /capture`` and the job polled;
* :mod:`._sink`: :class:`EpcisSink`, the sync loop's side (lease, carton contents), and
  :func:`build` / :func:`names`, as every sink package has them;
* :mod:`._doctor`: ``scanner-agent doctor``'s checks of the service and the credential.

Its emulator is lab code (:mod:`scanner_agent.lab.epcis_emulator`).  See
``docs/platforms.md``.
"""

from __future__ import annotations

import typing

from scanner_agent.sinks._lazy import lazy_exports as _lazy_exports
from scanner_agent.sinks.epcis._settings import (
    CONTENT_TYPES,
    ERROR_BEHAVIOURS,
    EpcisAgentSettings,
    EpcisSettings,
    check_capture,
    check_settings,
)

_lazy = _lazy_exports(
    __name__,
    {
        "_client": (
            "EpcisCaptureClient",
            "EpcisCaptureConfig",
            "ErrorBehaviour",
        ),
        "_doctor": (
            "CHECK_NAMES",
            "SERVICE_CHECK",
            "checks",
        ),
        "_document": (
            "EPC_SCHEMES",
            "EPCIS_CONTEXT",
            "Child",
            "EpcisConfig",
            "aggregation_event",
            "build_document",
            "epc_uri",
            "event_id",
            "object_event",
            "scan_events",
        ),
        "_job": (
            "CaptureJob",
            "CaptureProblem",
            "JobOutcome",
            "ServerProblemError",
            "attributed_events",
            "is_duplicate",
            "parse_capture_job",
            "parse_problem",
            "settle_job",
        ),
        "_sink": (
            "EPCIS_ADMISSION",
            "EpcisPayload",
            "EpcisSink",
            "build",
            "carton_units",
            "names",
        ),
    },
)


def __getattr__(name: str) -> typing.Any:
    """The client, the sink and their kin bring httpx, the sync loop and the outbox: they are
    imported when first asked for, so reading this package's settings (the config does) stays
    light (:func:`scanner_agent.sinks.lazy_exports`)."""
    return _lazy(name)


__all__ = [
    "CHECK_NAMES",
    "CONTENT_TYPES",
    "EPCIS_ADMISSION",
    "EPCIS_CONTEXT",
    "EPC_SCHEMES",
    "ERROR_BEHAVIOURS",
    "SERVICE_CHECK",
    "CaptureJob",
    "CaptureProblem",
    "Child",
    "EpcisAgentSettings",
    "EpcisCaptureClient",
    "EpcisCaptureConfig",
    "EpcisConfig",
    "EpcisPayload",
    "EpcisSettings",
    "EpcisSink",
    "ErrorBehaviour",
    "JobOutcome",
    "ServerProblemError",
    "aggregation_event",
    "attributed_events",
    "build",
    "build_document",
    "carton_units",
    "check_capture",
    "check_settings",
    "checks",
    "epc_uri",
    "event_id",
    "is_duplicate",
    "names",
    "object_event",
    "parse_capture_job",
    "parse_problem",
    "scan_events",
    "settle_job",
]
