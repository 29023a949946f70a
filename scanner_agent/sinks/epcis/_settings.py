"""The ``[epcis]`` table: what the EPCIS sink is set up with, and the one check of it.

The config reads the table into :class:`EpcisSettings` and refuses it with
:func:`check_settings`; the capture client's own
:class:`~scanner_agent.sinks.epcis.EpcisCaptureConfig` is refused by the same
rules (:func:`check_capture`), with the same words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from scanner_agent.sinks._credentials import read_token
from scanner_agent.sinks._settings import HttpSettings, check_url, require

__all__ = [
    "CONTENT_TYPES",
    "ERROR_BEHAVIOURS",
    "EpcisAgentSettings",
    "EpcisSettings",
    "check_capture",
    "check_settings",
]

CONTENT_TYPES = ("application/json", "application/ld+json")
"""Request types of ``/capture``: the REST binding's, and JSON-LD named as such."""
ERROR_BEHAVIOURS = ("proceed", "rollback")
"""``GS1-Capture-Error-Behaviour`` values."""
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]+")
"""An absolute URI's shape (RFC 3986): ``scheme:rest``, no spaces."""


@dataclass(frozen=True, slots=True)
class EpcisSettings:
    """GS1 EPCIS 2.0 capture (``sync.protocol = "epcis"``).  See ``docs/platforms.md``."""

    url: str = ""
    """Base URL of the EPCIS repository (``POST <url>/capture``)."""
    token_file: str = ""
    """File holding the bearer token (mode 0640 or 0600)."""
    token_env: str = ""
    """Name of an environment variable holding the token, when no file is used."""
    read_point: str = ""
    """URI of this scanning point, e.g. ``urn:epc:id:sgln:0614141.00777.0``."""
    biz_location: str = ""
    """URI of the site the goods are at after the event."""
    cn20_uri_prefix: str = "urn:cn:drugtrace:"
    """URI scheme for 码上放心 codes (they have no GS1 key): ``<prefix><code>``."""
    bill_uri_prefix: str = "urn:cn:drugtrace:bill:"
    """``bizTransaction`` URI of a bill: ``<prefix><bill>``."""
    content_type: str = "application/json"
    """Request type of ``/capture``: ``application/json`` or ``application/ld+json``."""
    error_behaviour: str = "proceed"
    """``GS1-Capture-Error-Behaviour``: ``proceed`` stores the good events of a document
    with a bad one; ``rollback`` stores none and the good ones are captured again."""
    poll_initial_s: float = 0.5
    """First pause before asking for a capture job's result; doubles each time ..."""
    poll_max_s: float = 5.0
    """... up to this."""
    poll_timeout_s: float = 120.0
    """Give up waiting for a capture job after this long (the batch goes again later)."""
    max_rounds: int = 4
    """Most captures, per batch, of what a rollback left unstored."""

    def read_token(self) -> str:
        """The bearer token, as ``sync.token_file`` / ``token_env`` are read.

        Raises:
            ConfigError: the file or variable cannot be read or is refused.
        """
        return read_token(self.token_file, self.token_env, "epcis")


class EpcisAgentSettings(Protocol):
    """What the EPCIS sink (``build``, ``names``) and its doctor checks read of the agent's
    settings: ``[epcis]``, and the timeouts and TLS of ``[sync]``.  Declared here, so the
    sink depends on its own settings and not on the registry that names it
    (:data:`scanner_agent.sinks.SINK_PACKAGES`)."""

    @property
    def epcis(self) -> EpcisSettings: ...
    @property
    def sync(self) -> HttpSettings: ...


def check_capture(
    *,
    content_type: str,
    error_behaviour: str,
    poll_initial_s: float,
    poll_max_s: float,
    poll_timeout_s: float,
    max_rounds: int,
) -> None:
    """The rules of how captures are made and waited for (the table's and the client's).

    Raises:
        ConfigError: naming the first ``epcis.<key>`` refused.
    """
    require(
        content_type in CONTENT_TYPES,
        "epcis.content_type",
        f"expected {' or '.join(CONTENT_TYPES)}",
    )
    require(
        error_behaviour in ERROR_BEHAVIOURS,
        "epcis.error_behaviour",
        f"expected {' or '.join(ERROR_BEHAVIOURS)}",
    )
    require(poll_initial_s > 0, "epcis.poll_initial_s", "must be > 0")
    require(poll_max_s >= poll_initial_s, "epcis.poll_max_s", "must be >= poll_initial_s")
    require(poll_timeout_s > 0, "epcis.poll_timeout_s", "must be > 0")
    require(max_rounds >= 1, "epcis.max_rounds", "must be >= 1")


def check_settings(ep: EpcisSettings, *, chosen: bool) -> None:
    """Refuse a bad ``[epcis]`` table; ``chosen`` (``sync.protocol = "epcis"``) also requires
    what a capture cannot go without.

    Raises:
        ConfigError: naming the first ``epcis.<key>`` refused.
    """
    require(
        not (ep.token_file and ep.token_env),
        "epcis.token_file",
        "set either token_file or token_env, not both",
    )
    check_capture(
        content_type=ep.content_type,
        error_behaviour=ep.error_behaviour,
        poll_initial_s=ep.poll_initial_s,
        poll_max_s=ep.poll_max_s,
        poll_timeout_s=ep.poll_timeout_s,
        max_rounds=ep.max_rounds,
    )
    if chosen:
        check_url("epcis.url", ep.url)
    for key in ("read_point", "biz_location"):
        value = getattr(ep, key)
        if chosen:
            require(bool(value), f"epcis.{key}", 'required by protocol "epcis"')
        require(
            not value or _URI.fullmatch(value) is not None,
            f"epcis.{key}",
            "expected a URI (scheme:rest, e.g. urn:epc:id:sgln:0614141.00777.0 or "
            f"https://id.gs1.org/414/0614141007770), got {value!r}",
        )
