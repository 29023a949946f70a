"""One exception tree for the whole agent.

Every error the agent raises on purpose descends from :class:`ScannerAgentError`,
so a caller can tell *our* failure modes from a bug.  The classes named without
a tag are defined here; a ``[tag]`` names the package that defines the class
(``scanner_agent.<tag>``, or the top-level ``drivers``), next to the code that
raises it.  tests/kernel/test_errors.py checks this drawing against the classes::

    ScannerAgentError
    ├── ConfigError                 a bad or missing setting (names the key)
    │   ├── CredentialError         a token or secret that cannot be used (never shows it)
    │   ├── ProfileError [drivers]  a firmware profile is missing, unreadable or invalid
    │   ├── LayoutError [drivers]   a HID POS report layout that cannot be read
    │   ├── DriverUnavailable [ops]  a source's driver library is not installed here (roles)
    │   └── Refusal [ops]           a config ``run`` would refuse, with a hint (preflight)
    ├── UsageError                  a command line asking the impossible (a missing file, a bad value)
    ├── DeviceError                 a scanner device could not be opened, read or written
    │   ├── DeviceUnavailable       absent, busy or not permitted: retried with backoff
    │   └── DeviceDisconnected      went away while open (unplugged, EIO, end of file)
    ├── DecoderUnavailable [drivers]  a camera decoding library cannot be loaded
    ├── LaneBusy                    a lane of slow work is full: refused, not queued
    ├── ServerStartError [asgi]     an HTTP server could not listen on its address
    ├── OutboxError                 the local SQLite outbox
    │   ├── OutboxFullError         disk full or free-space reserve reached
    │   └── OutboxCorruptError      the file failed its integrity check
    ├── BillError [bills]           a bill command cannot be done
    ├── ControlError [control]      the control interface failed or refused a request
    │   ├── ControlUnavailable [control]  the daemon cannot be reached on its socket
    │   │   └── ControlUncertain [control]  a request was sent and its reply lost: not repeated
    │   └── RemoteError [control]   the daemon answered with an error
    ├── InstallError [ops]          the installation cannot proceed
    ├── RequestRefused [traceserver]  the reference trace service refuses a request (4xx)
    ├── DatabaseError [traceserver]  the reference trace service's database cannot serve
    │   └── SchemaMismatch [traceserver]  at another schema version (``trace-server migrate``)
    └── SyncError                   talking to the trace service or a platform
        ├── TransientSyncError      worth retrying: network, timeout, 5xx, 429
        │   ├── NetworkError [sync]     no answer (connect, timeout, TLS)
        │   ├── ServiceError [sync]     a status worth retrying (5xx, 408, 425)
        │   ├── ServerProblemError [sinks]  an EPCIS capture job failed on the server's side
        │   ├── RateLimitedError    the service asked us to wait (Retry-After)
        │   └── SiteProblemError    refused for this site, not the batch: held, alarm
        │       └── ClockSkewError  this box's clock is off (a timestamp refused)
        ├── AuthError               401/403: stop syncing until the token is fixed
        ├── BatchRejectedError      other 4xx: the batch itself is refused
        ├── BatchTooLargeError      413: send the same rows in smaller batches
        └── ProtocolError           the reply does not match the batch

Third-party errors (sqlite3, httpx) are mapped to these at the module that
talks to the library, with ``raise ... from exc``, so callers handle *our*
failure modes and never a library's.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "AuthError",
    "BatchRejectedError",
    "BatchTooLargeError",
    "ClockSkewError",
    "ConfigError",
    "CredentialError",
    "DeviceDisconnected",
    "DeviceError",
    "DeviceUnavailable",
    "LaneBusy",
    "OutboxCorruptError",
    "OutboxError",
    "OutboxFullError",
    "ProtocolError",
    "RateLimitedError",
    "ScannerAgentError",
    "SiteProblemError",
    "SyncError",
    "TransientSyncError",
    "UsageError",
    "unknown_key",
]


class ScannerAgentError(Exception):
    """Root of every error the agent raises on purpose."""


class ConfigError(ScannerAgentError):
    """The configuration is invalid; the message names the offending key."""


class CredentialError(ConfigError):
    """A token or secret file or variable cannot be used; the message never contains it."""

    def __init__(self, message: str, *, problem: str) -> None:
        super().__init__(message)
        self.problem = problem
        """``missing``, ``unreadable``, ``not_file``, ``too_open``, ``malformed`` or ``unset``:
        what to fix (``doctor`` picks its hint by it)."""


class UsageError(ScannerAgentError):
    """A command's arguments cannot be acted on: a file named that does not exist, a bad value.

    The CLI exits 2 for it, as for a :class:`ConfigError`, and 1 for any other
    error (the operation itself failed).
    """


def unknown_key(
    where: str, known: Iterable[str], what: str = "unknown key", *, given: str | None = None
) -> ConfigError:
    """The error for an unknown key ``where`` (``sync.tokn_file``), with the nearest known
    key (``did you mean 'token_file'?``, difflib's ratio) when one is close. ``given`` is
    the unknown name when it is a value rather than the key's last part (a source type).

    >>> str(unknown_key("sync.tokn_file", ["token_file", "url"]))
    "sync.tokn_file: unknown key; did you mean 'token_file'? (known: token_file, url)"
    """
    names = sorted(known)
    name = where.rpartition(".")[2] if given is None else given
    close = difflib.get_close_matches(name, names, n=1)
    guess = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{where}: {what}{guess} (known: {', '.join(names)})")


class DeviceError(ScannerAgentError):
    """A scanner device could not be opened, read or written."""

    def __init__(self, message: str, *, device: str) -> None:
        super().__init__(message)
        self.device = device
        """The path or URL of the device."""


class DeviceUnavailable(DeviceError):
    """The device is absent, busy or not permitted; it is retried with backoff."""


class DeviceDisconnected(DeviceError):
    """The device went away while open (unplugged, EIO, end of file)."""


class LaneBusy(ScannerAgentError):
    """A lane already holds as many calls as it may; this one was refused, not queued."""


class OutboxError(ScannerAgentError):
    """The outbox could not do what was asked."""


class OutboxFullError(OutboxError):
    """No room for new scans: the disk is full or the free-space reserve is reached."""


class OutboxCorruptError(OutboxError):
    """The outbox file failed ``PRAGMA quick_check``."""


class SyncError(ScannerAgentError):
    """A batch could not be delivered to the trace service."""


class TransientSyncError(SyncError):
    """A failure that a later retry may overcome (network, timeout, 5xx)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        """Seconds the service asked us to wait, when it said so."""


class RateLimitedError(TransientSyncError):
    """The service answered 429 (or 503) with a ``Retry-After``."""


class SiteProblemError(TransientSyncError):
    """The platform refused the call for a reason about this site, not the batch.

    Its clock, its permissions, its address, its application: nothing in the
    batch is wrong, so nothing is refused.  The batch is held and tried again
    with backoff, and the sync loop raises an alarm with this message (which
    says what to fix) until a call passes; then it clears by itself.
    """


class ClockSkewError(SiteProblemError):
    """The platform refused the call's timestamp: this box's clock is off."""

    def __init__(self, message: str, *, offset_s: float | None = None) -> None:
        super().__init__(message)
        self.offset_s = offset_s
        """This box's clock minus the platform's (positive: ahead), when measured."""


class AuthError(SyncError):
    """The service refused our token (401/403); syncing stops until it is fixed."""


class BatchRejectedError(SyncError):
    """The service refused the batch as a whole (a 4xx other than 401/403/413/429)."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class BatchTooLargeError(SyncError):
    """The service answered 413: send the same rows in smaller batches."""


class ProtocolError(SyncError):
    """The service's reply is malformed or does not match the batch sent."""
