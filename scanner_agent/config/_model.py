"""The configuration's dataclasses: one frozen dataclass per table, a docstring on each key.

The settings the sinks own (:class:`AliHealthSettings`, :class:`EpcisSettings`) are composed
here, not redefined; reading a file into these is :mod:`._load`, checking them :mod:`._check`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner_agent.kernel import ConfigError
from scanner_agent.sinks import SINK_PACKAGES, read_token
from scanner_agent.sinks.alihealth import AliHealthSettings
from scanner_agent.sinks.epcis import EpcisSettings

DEFAULT_CONFIG_PATH = Path("/etc/scanner-agent/agent.toml")

PROTOCOLS: tuple[str, ...] = tuple(SINK_PACKAGES)
"""What the sync loop speaks (``sync.protocol``): our Trace API v1, 码上放心 bill upload, EPCIS 2.0
(:data:`scanner_agent.sinks.SINK_PACKAGES`: one sink package each)."""


@dataclass(frozen=True, slots=True)
class ScanConfig:
    """How accepted scans are labelled and filtered."""

    action: str = "ship"
    """Default movement for scans whose source does not set one."""
    bill: str = ""
    """Default bill number; empty means ``<device_id>-<action>`` (a bill per device and action)."""
    reject_duplicates: bool = True
    """Refuse a code already queued for the same bill and action (bad read, ``duplicate scan``)."""


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """The local SQLite outbox."""

    path: str = "/var/lib/scanner-agent/outbox.db"
    """SQLite file holding every accepted scan until the service confirms it."""
    commit_interval_ms: float = 0.0
    """Extra wait for more scans to share a group commit.  0 (bench/ingest.py): commit as
    soon as the writer is free; scans arriving meanwhile form the next group by themselves,
    so groups still grow with the load (p99 ack at 2,000 scans/s: 2.8-3.1 ms at 0, 6.2-7.6 ms
    at 2 ms)."""
    commit_max_rows: int = 1024
    """Group commit size cap: a transaction never holds more scans than this (bench/ingest.py,
    a flood from 8 sources: 1,024 and 2,048 both 163-174k scans/s, 512 122-128k; the smaller
    cap keeps each transaction shorter.  At ordinary rates groups are small anyway)."""
    min_free_mb: int = 64
    """Free-space reserve: below it new scans are refused with ``outbox full``."""
    retention_days: float = 30.0
    """How long delivered rows are kept for audit and lookup before pruning."""
    rejects_retention_days: float = 30.0
    """How long refused-scan records (aggregates: count, first and last time, one sample per
    hour, source, device and kind of reason) are kept after their last refusal."""
    rejects_max_rows: int = 100_000
    """Cap on refused-scan records; the oldest go first.  Refusals are also not recorded while
    free space is below twice ``min_free_mb``, so they never eat into the reserve."""


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """Delivery to the trace service (Trace API v1), or to the platform ``protocol`` names."""

    protocol: str = "trace-api"
    """``trace-api`` (``url``, ``token_file``), ``alihealth`` (the ``[alihealth]`` table) or
    ``epcis`` (the ``[epcis]`` table).  Batching, retry and backoff keys apply to all three."""
    url: str = "http://127.0.0.1:8900"
    """Base URL of the trace service."""
    token_file: str = ""
    """File holding the bearer token (mode 0640 or 0600: one every user may read is refused)."""
    token_env: str = ""
    """Name of an environment variable holding the token, when no file is used."""
    enabled: bool = True
    """Turn syncing off (scans still queue) for a site with no link yet."""
    batch_size: int = 2500
    """Most scans sent in one request (bench/sync.py: 2,000-5,000 drain alike; smaller
    batches hold the outbox thread, and so scan acknowledgements, for less time)."""
    batch_bytes: int = 2 * 1024 * 1024
    """Most uncompressed bytes of event JSON in one request (the events array; at least one event)."""
    gzip: bool = True
    """Compress request bodies."""
    gzip_level: int = 1
    """gzip level 1-9: 1 already shrinks a batch about tenfold at a fraction of the CPU of 6."""
    max_in_flight: int = 3
    """Most batches awaiting a reply at once while a backlog drains (1 = strictly one at a time)."""
    idle_poll_s: float = 1.0
    """How often an idle sync loop looks for work it was not told about."""
    connect_timeout_s: float = 5.0
    """TCP/TLS connect timeout."""
    read_timeout_s: float = 30.0
    """Timeout waiting for the service's reply."""
    write_timeout_s: float = 30.0
    """Timeout sending a request body (a slow uplink needs more)."""
    backoff_initial_s: float = 0.5
    """First retry delay after a failure; doubles each time (full jitter)."""
    backoff_max_s: float = 60.0
    """Longest retry delay."""
    lease_s: float = 60.0
    """How long a batch stays leased to a sender before it may be reclaimed."""
    token_poll_s: float = 5.0
    """While the token is refused, how often the token file or variable is read again."""
    verify_tls: bool = True
    """Verify the service's certificate (never turn off outside a lab)."""
    allow_insecure_http: bool = False
    """Allow a plain ``http://`` service URL (``url``, ``epcis.url`` or ``alihealth.url``,
    whichever ``protocol`` uses) to a host that is not loopback.  The token and every scan
    then cross the network unencrypted, so such a URL is refused unless this is true, and
    even then each start warns (a lab, or a link encrypted by a VPN)."""
    ca_bundle: str = ""
    """PEM file of CA certificates to trust instead of the system store."""
    client_cert: str = ""
    """PEM client certificate for mutual TLS."""
    client_key: str = ""
    """PEM private key for ``client_cert``."""

    def read_token(self) -> str:
        """The bearer token, from ``token_file`` or ``token_env``; empty when neither is set.

        Raises:
            ConfigError: the file or variable cannot be read or breaks :data:`CREDENTIAL_RULE`,
                or the file is readable by every user (:func:`read_secret_file`).
        """
        return read_token(self.token_file, self.token_env, "sync")


def read_credential(cfg: AgentConfig) -> str:
    """What the sink for ``cfg.sync.protocol`` authenticates with (the daemon, its reload,
    ``check-config`` and ``doctor`` read it here, so one rule refuses a bad one everywhere).

    Raises:
        ConfigError: the file or variable cannot be read or is refused.
    """
    if cfg.sync.protocol == "alihealth":
        return cfg.alihealth.read_secret()
    if cfg.sync.protocol == "epcis":
        return cfg.epcis.read_token()
    return cfg.sync.read_token()


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """The local control interface (``docs/control.md``): CLI and TUI talk to the daemon here."""

    socket: str = "/run/scanner-agent/control.sock"
    """UNIX socket path; empty turns the interface off."""
    group: str = ""
    """Group owning the socket (e.g. the dispatch clerks'); empty keeps the daemon's."""
    mode: str = "0660"
    """Socket permissions, octal; a mode that lets every user write (``0666``, ``777``) is
    refused: connecting needs write permission, and the socket can open and close bills."""
    max_clients: int = 16
    """Connections served at once; one more gets an ``unavailable`` reply and is closed."""
    max_line_bytes: int = 1024 * 1024
    """Longest request line (a CSV import travels in one); longer gets one error, then close."""
    max_backlog_bytes: int = 1024 * 1024
    """Unsent reply and event bytes one client may leave before it is disconnected."""
    request_timeout_s: float = 30.0
    """A request line, once started, must end within this; idle connections may stay."""
    docks: tuple[str, ...] = ()
    """Control sockets ``scanner-agent tui`` attaches to at once (one clerk, several docks: the
    docks overview); a remote dock's socket is forwarded over SSH.  Empty: ``socket`` alone."""

    @property
    def mode_bits(self) -> int:
        """``mode`` as a number."""
        return int(self.mode, 8)


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """The optional Prometheus endpoint (``docs/operations.md``)."""

    listen: str = ""
    """``host:port`` on loopback for ``GET /metrics``, e.g. ``127.0.0.1:9464``; empty turns it off.
    The host is resolved when the config loads and again where the endpoint binds (which
    binds the address it checked, not the name); every address it names must be loopback
    (the endpoint has no authentication)."""


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One ``[[source]]`` table: a scanner input.

    ``options`` holds the type-specific keys (``listen``, ``ack``, ``path``,
    ``port``...), validated by the driver for ``type`` when the config loads.
    """

    type: str
    """Driver name: ``tcp``, ``replay`` (file or stdin), and later hardware drivers."""
    name: str = ""
    """A label for logs and status; defaults to ``<type>:<main option>``."""
    action: str = ""
    """Movement for this source's scans; empty means ``scan.action``."""
    bill: str = ""
    """Bill for this source's scans; empty means the current/default bill."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """The driver's own keys, as written."""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The whole agent configuration."""

    device_id: str = "scanner-agent"
    """This agent's identity towards the trace service (one per box or dock)."""
    scan: ScanConfig = field(default_factory=ScanConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    alihealth: AliHealthSettings = field(default_factory=AliHealthSettings)
    epcis: EpcisSettings = field(default_factory=EpcisSettings)
    control: ControlConfig = field(default_factory=ControlConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    sources: tuple[SourceConfig, ...] = ()
    """Scanner inputs, in file order."""
    log_level: str = "info"
    """``debug``, ``info``, ``warning`` or ``error``."""

    def default_bill(self, action: str) -> str:
        """The bill a scan goes to when neither its source nor an open bill names one."""
        return self.scan.bill or f"{self.device_id}-{action}"

    def find_source(self, type_: str, name: str) -> SourceConfig:
        """The ``type_`` source called ``name`` (its name, or its ``device`` option).

        For commands that borrow a configured source's settings, such as
        ``decode --source``, so they run as that source does.

        Raises:
            ConfigError: no such source; the message names those there are, or says there is none.
        """
        sources = [s for s in self.sources if s.type == type_]
        for source in sources:
            if name in (source.name, source.options.get("device")):
                return source
        names = ", ".join(s.name or str(s.options.get("device")) for s in sources)
        raise ConfigError(
            f"Failed to find {type_} source {name!r} in the config: "
            + (f"Expected one of {names}" if names else f"it has no {type_} source")
        )
