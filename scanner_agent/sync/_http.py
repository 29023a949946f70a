"""The one HTTP layer of the sinks: TLS, bearer auth, errors mapped to the sync loop's.

Every sink speaks HTTP through httpx, and every sink must fail the same way
for the same cause, because the sync loop decides on retry, pause or
dead letter from the :class:`~scanner_agent.kernel.SyncError` tree alone:

* a transport failure (refused, reset, TLS, truncated reply, timeout) is a
  :class:`NetworkError` (:func:`transport_error`): the link shows offline;
* an HTTP status that is not the expected answer is mapped once, here
  (:func:`status_error`): 429 (or 503 with ``Retry-After``) rate-limited,
  401/403 the credential refused, 413 too large, 408/425/5xx retried, another
  2xx a reply of the wrong shape, any other 4xx a refusal;
* a ``Retry-After`` header is read by :func:`parse_retry_after`, the server's
  clock from ``Date`` by :func:`date_offset_s`;
* waits between tries grow by the kernel's one rule, :func:`scanner_agent.kernel.backoff_delay`.

The credential is only ever put in a header (:class:`BearerAuth`) or a
signature, never in a log line or an exception: a reply echoing it (a proxy's
error page) has it replaced by ``<token>`` (:func:`redact`).
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx

from scanner_agent import __version__
from scanner_agent.kernel import (
    AuthError,
    BatchRejectedError,
    BatchTooLargeError,
    ConfigError,
    ProtocolError,
    RateLimitedError,
    SyncError,
    TransientSyncError,
)

__all__ = [
    "RETRYABLE_STATUSES",
    "USER_AGENT",
    "BearerAuth",
    "NetworkError",
    "ServiceError",
    "TlsSettings",
    "build_ssl_context",
    "date_offset_s",
    "parse_retry_after",
    "redact",
    "status_error",
    "transport_error",
]

USER_AGENT = f"scanner-agent/{__version__}"
"""What every sink's requests say they come from."""

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Statuses worth the same request again later (any other 5xx is too)."""


class NetworkError(TransientSyncError):
    """The service could not be reached, or did not answer in time (no HTTP status)."""


class ServiceError(TransientSyncError):
    """The service answered with a status worth retrying (5xx, 408, 425)."""

    def __init__(self, message: str, *, status_code: int, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status_code = status_code


class TlsSettings(Protocol):
    """The TLS keys a sink's settings carry (``[sync]``: ``verify_tls``, ``ca_bundle`` ...)."""

    @property
    def verify_tls(self) -> bool: ...

    @property
    def ca_bundle(self) -> str: ...

    @property
    def client_cert(self) -> str: ...

    @property
    def client_key(self) -> str: ...


def build_ssl_context(cfg: TlsSettings) -> ssl.SSLContext | bool:
    """The TLS settings: verification on unless turned off, optional CA bundle and mTLS.

    Raises:
        ConfigError: a CA bundle or client certificate cannot be loaded.
    """
    if not cfg.verify_tls:
        return False
    try:
        ctx = ssl.create_default_context(cafile=cfg.ca_bundle or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"sync.ca_bundle: cannot load {cfg.ca_bundle!r} as PEM certificates: {_why(exc)}"
        ) from exc
    if cfg.client_cert:
        try:
            ctx.load_cert_chain(cfg.client_cert, cfg.client_key or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"sync.client_cert: cannot load {cfg.client_cert!r} with the key "
                f"{cfg.client_key!r} (PEM certificate and private key): {_why(exc)}"
            ) from exc
    return ctx


def _why(exc: OSError | ssl.SSLError) -> str:
    """An OS error in words (``No such file or directory``), an SSL error as OpenSSL says it."""
    if isinstance(exc, ssl.SSLError) or not exc.strerror:
        return str(exc)
    return exc.strerror


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), or None.

    >>> parse_retry_after("7")
    7.0
    >>> parse_retry_after("soon") is None
    True
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    ahead = date_offset_s(value, now or datetime.now(UTC))  # now minus the date
    return None if ahead is None else max(0.0, -ahead)


def date_offset_s(date_header: str | None, now: datetime) -> float | None:
    """How far ``now`` (this box's clock) is ahead of an HTTP ``Date`` header, in seconds.

    Negative when the box is behind; None without a readable header.

    >>> date_offset_s("Sun, 06 Nov 1994 08:49:37 GMT", datetime(1994, 11, 6, 8, 59, 37, tzinfo=UTC))
    600.0
    >>> date_offset_s("soon", datetime.now(UTC)) is None
    True
    """
    if not date_header:
        return None
    try:
        theirs = parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if theirs.tzinfo is None:
        theirs = theirs.replace(tzinfo=UTC)
    return (now - theirs).total_seconds()


def redact(detail: str, token: str) -> str:
    """``detail`` with ``token`` replaced by ``<token>`` (a proxy's page echoing our headers).

    >>> redact("bad header: Bearer s3cret", "s3cret")
    'bad header: Bearer <token>'
    """
    return detail.replace(token, "<token>") if token and token in detail else detail


def transport_error(exc: httpx.HTTPError, what: str) -> NetworkError:
    """The :class:`NetworkError` for an httpx failure while ``what`` (``sending batch X``).

    Timeouts are named as such; everything else (refused, reset, TLS,
    truncated reply, decoding) carries httpx's own words.
    """
    if isinstance(exc, httpx.TimeoutException):
        return NetworkError(f"timeout {what}: {type(exc).__name__}")
    return NetworkError(f"network error {what}: {type(exc).__name__}: {exc}")


def status_error(
    response: httpx.Response,
    detail: str,
    *,
    sent: str,
    token: str,
    prefix: str = "",
) -> SyncError:
    """The sync error for a reply whose status is not the answer expected to ``sent``.

    ``detail`` is what the reply says (each protocol reads its own error
    body); ``token`` is taken out of it.  ``sent`` names what was sent
    (``batch X``), ``prefix`` the service when it is not the trace service
    (``EPCIS: ``).
    """
    status = response.status_code
    detail = redact(detail, token)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429 or (status == 503 and retry_after is not None):
        return RateLimitedError(
            f"{prefix}service busy ({status}): {detail}", retry_after=retry_after
        )
    if status in (401, 403):
        return AuthError(f"{prefix}service refused the token ({status}): {detail}")
    if status == 413:
        return BatchTooLargeError(f"{prefix}{sent} too large (413): {detail}")
    if status in RETRYABLE_STATUSES or status >= 500:
        return ServiceError(
            f"{prefix}service error ({status}): {detail}",
            status_code=status,
            retry_after=retry_after,
        )
    if 200 <= status < 300:
        # Something was taken, but not in the way the protocol says: never a dead letter.
        return ProtocolError(f"{prefix}unexpected status {status} to {sent}")
    return BatchRejectedError(
        f"{prefix}service refused {sent} ({status}): {detail}", status_code=status
    )


class BearerAuth:
    """A bearer token on an httpx client, swappable in place (a re-read token file).

    The token is only ever put in the ``Authorization`` header, never in a
    log line or an exception.  The base of the HTTP sinks' clients.
    """

    _token: str
    _client: httpx.AsyncClient

    def set_token(self, token: str) -> bool:
        """Use ``token`` from the next request on; True when it differs from the one in use.

        An empty token sends no ``Authorization`` header.
        """
        token = token.strip()
        if token == self._token:
            return False
        self._token = token
        if token:
            self._client.headers["Authorization"] = f"Bearer {token}"
        else:
            self._client.headers.pop("Authorization", None)
        return True
