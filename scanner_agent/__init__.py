"""scanner-agent: the edge half of drug traceability.

Read codes from scanners, validate them, keep every accepted scan durably in a
local SQLite outbox before the operator's good-read signal, and sync them to
the central trace service.
"""

__all__: list[str] = []  # the API is the subpackages (docs/architecture.md)

__version__ = "0.1.0"
