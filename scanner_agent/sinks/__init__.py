"""The sync loop's sinks, one package per ``sync.protocol``, each of the same shape.

* :mod:`.trace_api`: our Trace API v1 (``trace-api``, the default);
* :mod:`.alihealth`: 码上放心 bill upload over the TOP gateway (``alihealth``);
* :mod:`.epcis`: GS1 EPCIS 2.0 capture (``epcis``).

Each package has its settings and their one check (``_settings.py``, composed by
the config), its client (``_client.py``), its sink (``_sink.py``, with
``build`` and ``names``, the two functions :func:`build_sink` and
:func:`sink_names` dispatch to), its doctor checks (``_doctor.py``: ``checks``
and their ``CHECK_NAMES``, run by ``scanner-agent doctor`` with a
:class:`DoctorKit`) and its protocol's pure parts.  Each speaks
HTTP through the one layer in :mod:`scanner_agent.sync` (TLS, bearer auth,
status and network errors mapped to the sync loop's, backoff).  A sink
package is imported only when its protocol is chosen, so a Trace API agent
never loads the platform code: a package's ``__init__`` imports its settings and
pure parts, its client and sink load when first used (:func:`lazy_exports`).
What all sinks share for their settings is here too: the credential rule
(:func:`read_secret_file`, :func:`read_token`) and the service URL rule
(:func:`check_url`).  See ``docs/platforms.md``.
"""

from scanner_agent.sinks._credentials import (
    CREDENTIAL_RULE,
    MAX_SECRET_BYTES,
    check_secret,
    open_to_everyone,
    read_secret_file,
    read_token,
)
from scanner_agent.sinks._doctor import DoctorKit, Finding, FindingStatus
from scanner_agent.sinks._lazy import lazy_exports
from scanner_agent.sinks._registry import (
    SINK_PACKAGES,
    AgentSettings,
    SinkPackage,
    build_sink,
    sink_names,
    sink_package,
)
from scanner_agent.sinks._settings import HttpSettings, check_url, require, url_problem

__all__ = [
    "CREDENTIAL_RULE",
    "MAX_SECRET_BYTES",
    "SINK_PACKAGES",
    "AgentSettings",
    "DoctorKit",
    "Finding",
    "FindingStatus",
    "HttpSettings",
    "SinkPackage",
    "build_sink",
    "check_secret",
    "check_url",
    "lazy_exports",
    "open_to_everyone",
    "read_secret_file",
    "read_token",
    "require",
    "sink_names",
    "sink_package",
    "url_problem",
]
