"""The kernel: what every layer of the agent shares, on the standard library alone.

The bottom layer (docs/architecture.md draws the rest).  Everything above may
import it; it imports nothing of the agent and no third-party library
(tests/architecture/test_layers.py holds it to that):

* the scan contract between drivers and the core: :class:`RawScan`,
  :class:`ScanOutcome`, :class:`Verdict`, :class:`Intake`, :class:`Source`,
  :class:`DeviceStatus`, and the clock seam (:data:`Clock`, :func:`utc_now`);
* the one exception tree, :class:`ScannerAgentError` and its branches (the
  drawing in ``_errors.py`` is checked against the classes);
* the shared vocabulary: :data:`ACTIONS`, the warehouse movements;
  :func:`parse_host_port`, the one reader of ``host:port`` text;
  :func:`backoff_delay`, the one backoff rule (sync retries, device reopening);
  :data:`PLATFORM_PARAMS`, the optional parameters a 码上放心 bill carries; and
  :func:`plural`, the one rule for a counted noun (``1 scan``, ``2 scans``);
* :class:`Lane` and :class:`SingleFlight`, bounded executors for slow work
  that drivers and the daemon both use.

Import from here, never from the private modules.
"""

from __future__ import annotations

from scanner_agent.kernel._actions import ACTIONS
from scanner_agent.kernel._addresses import LISTEN_ANY, parse_host_port
from scanner_agent.kernel._backoff import backoff_delay
from scanner_agent.kernel._errors import (
    AuthError,
    BatchRejectedError,
    BatchTooLargeError,
    ClockSkewError,
    ConfigError,
    CredentialError,
    DeviceDisconnected,
    DeviceError,
    DeviceUnavailable,
    LaneBusy,
    OutboxCorruptError,
    OutboxError,
    OutboxFullError,
    ProtocolError,
    RateLimitedError,
    ScannerAgentError,
    SiteProblemError,
    SyncError,
    TransientSyncError,
    UsageError,
    unknown_key,
)
from scanner_agent.kernel._lanes import Lane, SingleFlight
from scanner_agent.kernel._platform_params import PLATFORM_PARAMS, platform_params
from scanner_agent.kernel._scans import (
    Clock,
    DeviceStatus,
    Intake,
    RawScan,
    ScanOutcome,
    Source,
    Verdict,
    utc_now,
)
from scanner_agent.kernel._words import plural

__all__ = [
    "ACTIONS",
    "LISTEN_ANY",
    "PLATFORM_PARAMS",
    "AuthError",
    "BatchRejectedError",
    "BatchTooLargeError",
    "Clock",
    "ClockSkewError",
    "ConfigError",
    "CredentialError",
    "DeviceDisconnected",
    "DeviceError",
    "DeviceStatus",
    "DeviceUnavailable",
    "Intake",
    "Lane",
    "LaneBusy",
    "OutboxCorruptError",
    "OutboxError",
    "OutboxFullError",
    "ProtocolError",
    "RateLimitedError",
    "RawScan",
    "ScanOutcome",
    "ScannerAgentError",
    "SingleFlight",
    "SiteProblemError",
    "Source",
    "SyncError",
    "TransientSyncError",
    "UsageError",
    "Verdict",
    "backoff_delay",
    "parse_host_port",
    "platform_params",
    "plural",
    "unknown_key",
    "utc_now",
]
