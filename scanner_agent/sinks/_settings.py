"""What every sink's settings are checked with: the service URL rule and the refusal.

Each sink package checks its own table with these (``_settings.py``), and the
config composes them, so a key is refused with one message wherever it is
read (``check-config``, ``run``, a client built by hand).
"""

from __future__ import annotations

import urllib.parse
from typing import Protocol

from scanner_agent.kernel import ConfigError

__all__ = ["HttpSettings", "check_url", "require", "url_problem"]


class HttpSettings(Protocol):
    """What every sink's HTTP client reads of ``[sync]`` whatever its protocol: the
    timeouts and TLS of the one HTTP layer (:func:`scanner_agent.sync.build_ssl_context`)."""

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


def require(condition: bool, key: str, message: str) -> None:
    """Refuse ``key`` with ``message`` unless ``condition`` holds.

    Raises:
        ConfigError: ``<key>: <message>``.
    """
    if not condition:
        raise ConfigError(f"{key}: {message}")


def url_problem(url: str) -> str | None:
    """Why ``url`` is no base URL a sink can send to, or None.

    Checked whole here so that a bad one is a refusal naming its key, never a traceback
    from the URL parser (``http://[::1``) or a start that can never connect (port
    99999, no host). A base URL takes no query or fragment (paths are appended to it),
    and no user name or password: URLs are logged, credentials belong in a file.

    >>> url_problem("https://trace.example:8443/api") is None
    True
    >>> url_problem("https://user:pw@trace.example")
    'holds a user name or password; put the credential in the token or secret file'
    """
    if not url.startswith(("http://", "https://")):
        return f"expected an http:// or https:// URL, got {url!r}"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "holds a space or control character"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        return f"not a url: {exc}"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if parts.username is not None or parts.password is not None:
        return "holds a user name or password; put the credential in the token or secret file"
    if not parts.hostname:
        return "no host"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "a base URL takes no query (?...) or fragment (#...)"
    if port == 0:
        return "the port is not a number in 1-65535"
    return None


def check_url(key: str, url: str) -> None:
    """Refuse ``key`` unless ``url`` is a base URL a sink can send to (:func:`url_problem`).

    Raises:
        ConfigError: naming ``key`` and the problem.
    """
    problem = url_problem(url)
    require(problem is None, key, problem or "")
