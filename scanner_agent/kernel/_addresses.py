"""The one reader of ``host:port`` text: a tcp source's ``listen``, ``metrics.listen``, the
reference trace service's ``--listen``.

One rule for every address the agent is given, so a value one part accepts is never
refused by another (``check-config`` and ``run`` read the same text the same way):

* the port is the text after the last ``:``: ASCII digits, 0 to 65535 (0 asks the
  system for a free port);
* an IPv6 host is written in brackets, ``[::1]:9100``; the brackets are removed, and a
  host holding a bracket anywhere else is refused;
* an empty host (``:9100``) means the caller's ``default_host``, or is refused when the
  caller gives none.

The host is not resolved here: what may be listened on is the caller's rule (loopback
only for metrics, this box's addresses for a tcp source).
"""

from __future__ import annotations

from scanner_agent.kernel._errors import ConfigError

__all__ = ["LISTEN_ANY", "parse_host_port"]

LISTEN_ANY = "0.0.0.0"  # noqa: S104 - what an empty host asks for
"""The host of a ``listen`` written without one (``:9100``): every IPv4 interface."""

MAX_PORT = 65535


def parse_host_port(
    text: str, key: str, *, default_host: str | None = None, example: str = ""
) -> tuple[str, int]:
    """``host:port`` as ``(host, port)``.

    ``key`` names the setting in the error (``source[0].listen``); ``example`` is shown
    there as the form expected (``such as 127.0.0.1:9464``) when given.

    >>> parse_host_port("127.0.0.1:9100", "listen")
    ('127.0.0.1', 9100)
    >>> parse_host_port("[::1]:9464", "metrics.listen")
    ('::1', 9464)
    >>> parse_host_port(":8900", "listen", default_host="0.0.0.0")
    ('0.0.0.0', 8900)
    >>> parse_host_port("9100", "source[0].listen")
    Traceback (most recent call last):
      ...
    scanner_agent.kernel._errors.ConfigError: source[0].listen: expected host:port, got '9100'

    Raises:
        ConfigError: not ``host:port`` by the rules above, naming ``key``.
    """
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if (
        not sep
        or not (port.isascii() and port.isdigit() and int(port) <= MAX_PORT)
        or "[" in host
        or "]" in host
        or (not host and default_host is None)
    ):
        such_as = f" such as {example}" if example else ""
        raise ConfigError(f"{key}: expected host:port{such_as}, got {text!r}")
    return host or str(default_host), int(port)
