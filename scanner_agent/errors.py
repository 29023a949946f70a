"""One exception tree for the whole agent.

::

    ScannerAgentError
    ├── ConfigError            a bad or missing setting (names the key)
    │   └── CredentialError    a token or secret that cannot be used (never shows it)
    ├── UsageError             a command line asking the impossible (a missing file, a bad value)
    ├── DeviceError            a scanner device could not be opened, read or written
    │   ├── DeviceUnavailable  absent, busy or not permitted: retried with backoff
    │   └── DeviceDisconnected went away while open (unplugged, EIO, end of file)
    ├── OutboxError            the local SQLite outbox
    │   ├── OutboxFullError    disk full or free-space reserve reached
    │   └── OutboxCorruptError the file failed its integrity check
    └── SyncError              talking to the trace service
        ├── TransientSyncError worth retrying: network, timeout, 5xx, 429
        │   ├── RateLimitedError   the service asked us to wait (Retry-After)
        │   └── SiteProblemError   refused for this site, not the batch: held, alarm
        │       └── ClockSkewError     this box's clock is off (a timestamp refused)
        ├── AuthError          401/403: stop syncing until the token is fixed
        ├── BatchRejectedError other 4xx: the batch itself is refused
        └── ProtocolError      the reply does not match the batch

Third-party errors (sqlite3, httpx) are mapped to these at the module that
talks to the library, with ``raise ... from exc``, so callers handle *our*
failure modes and never a library's.
"""

from __future__ import annotations


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
