"""The ``[alihealth]`` table: what the 码上放心 sink is set up with, and the one check of it.

The config reads the table into :class:`AliHealthSettings` and refuses it with
:func:`check_settings`; the client's own :class:`AliHealthConfig` (built from
it, or by hand) is refused by the same rules (:func:`check_calls`), with the
same words.  The allowed values come from the protocol's own tables
(:data:`API_METHODS`, :data:`SIGN_METHODS`, :data:`BILLSTATUS_METHODS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from scanner_agent.kernel import CredentialError, platform_params
from scanner_agent.sinks._credentials import read_secret_file
from scanner_agent.sinks._settings import check_url, require
from scanner_agent.sinks.alihealth._protocol import (
    API_METHODS,
    BILLSTATUS_METHODS,
    MAX_CODES,
    SIGN_METHODS,
)

__all__ = ["AliHealthAgentSettings", "AliHealthSettings", "check_calls", "check_settings"]


@dataclass(frozen=True, slots=True)
class AliHealthSettings:
    """码上放心 bill upload over the TOP gateway (``sync.protocol = "alihealth"``).

    Each closed bill is one upload; its type and parties come from the bill
    (``scanner-agent bill open``), the rest from here.  See ``docs/platforms.md``.
    """

    url: str = "https://eco.taobao.com/router/rest"
    """The TOP gateway."""
    app_key: str = ""
    """The application's key from the 码上放心 open platform."""
    app_secret_file: str = ""
    """File holding the app secret (mode 0640 or 0600; it only signs, it is never sent)."""
    sign_method: str = "hmac-sha256"
    """``md5``, ``hmac`` (HMAC-MD5) or ``hmac-sha256``."""
    api: str = "kyt"
    """``kyt`` (producers, distributors) or ``lsyd`` (retail pharmacies)."""
    ref_user_id: str = ""
    """This enterprise's ``ref_ent_id`` (the uploader)."""
    ent_id: str = ""
    """This enterprise's ``ent_id``: the own side of a bill whose party is left empty
    (``to`` of an inbound bill, ``from`` of an outbound one)."""
    oper_ic_code: str = ""
    """Who submits bills; empty means the app key (as the platform suggests)."""
    oper_ic_name: str = ""
    physic_type: int = 3
    """3 ordinary drugs, 2 special drugs."""
    max_codes: int = MAX_CODES
    """Most codes per upload call; a larger bill goes in numbered sub-bills."""
    timeout_s: float = 30.0
    """Timeout of one gateway call."""
    status_poll_s: float = 30.0
    """Wait before asking the platform how an uploaded bill was processed (0: never ask)."""
    status_polls: int = 10
    """Most status queries per bill (the wait doubles each time) before giving up."""
    status_api: str = ""
    """Which bill status query to poll: ``scqy`` or ``wes`` (enterprise variants of
    ``kyt``), ``lsyd`` (retail); empty: ``scqy`` for ``api = "kyt"``, ``lsyd`` for ``"lsyd"``."""
    extra: Mapping[str, str] = field(default_factory=dict)
    """Optional upload parameters sent with every bill (``warehouse_id`` ...), by the platform's
    names (:data:`~scanner_agent.kernel.PLATFORM_PARAMS`); a bill's own ``params`` override them."""

    def read_secret(self) -> str:
        """The app secret from ``app_secret_file``.

        Raises:
            ConfigError: not set, unreadable, or readable by every user.
        """
        if not self.app_secret_file:
            raise CredentialError("alihealth.app_secret_file: not set", problem="unset")
        return read_secret_file(self.app_secret_file, "alihealth.app_secret_file")


class AliHealthAgentSettings(Protocol):
    """What the 码上放心 sink (``build``, ``names``) and its doctor checks read of the agent's
    settings: declared here, so the sink depends on its own settings and not on the
    registry that names it (:data:`scanner_agent.sinks.SINK_PACKAGES`)."""

    @property
    def alihealth(self) -> AliHealthSettings: ...


def _one_of(values: tuple[str, ...] | list[str]) -> str:
    return f"{', '.join(values[:-1])} or {values[-1]}" if len(values) > 1 else values[0]


def check_calls(
    *,
    api: str,
    sign_method: str,
    physic_type: int,
    max_codes: int,
    timeout_s: float,
    status_api: str,
    extra: Mapping[str, str],
) -> None:
    """The rules of what every gateway call is made with (the table's and the client's).

    Raises:
        ConfigError: naming the first ``alihealth.<key>`` refused.
    """
    apis = list(API_METHODS)
    require(api in apis, "alihealth.api", f"expected {_one_of(apis)}, got {api!r}")
    require(
        sign_method in SIGN_METHODS,
        "alihealth.sign_method",
        f"expected {_one_of(SIGN_METHODS)}, got {sign_method!r}",
    )
    require(physic_type >= 1, "alihealth.physic_type", "must be >= 1 (3 ordinary, 2 special)")
    require(1 <= max_codes <= MAX_CODES, "alihealth.max_codes", f"must be from 1 to {MAX_CODES}")
    require(timeout_s > 0, "alihealth.timeout_s", "must be > 0")
    require(
        status_api in ("", *BILLSTATUS_METHODS),
        "alihealth.status_api",
        f"expected {', '.join(BILLSTATUS_METHODS)} or empty, got {status_api!r}",
    )
    platform_params(extra, "alihealth.extra")


def check_settings(ali: AliHealthSettings, *, chosen: bool) -> None:
    """Refuse a bad ``[alihealth]`` table; ``chosen`` (``sync.protocol = "alihealth"``) also
    requires what an upload cannot go without.

    Raises:
        ConfigError: naming the first ``alihealth.<key>`` refused.
    """
    check_calls(
        api=ali.api,
        sign_method=ali.sign_method,
        physic_type=ali.physic_type,
        max_codes=ali.max_codes,
        timeout_s=ali.timeout_s,
        status_api=ali.status_api,
        extra=ali.extra,
    )
    require(ali.status_poll_s >= 0, "alihealth.status_poll_s", "must be >= 0")
    require(ali.status_polls >= 1, "alihealth.status_polls", "must be >= 1")
    if chosen:
        check_url("alihealth.url", ali.url)
        for key in ("app_key", "app_secret_file", "ref_user_id"):
            require(bool(getattr(ali, key)), f"alihealth.{key}", 'required by protocol "alihealth"')
