"""Errors of the bill desk (a branch of :class:`~scanner_agent.kernel.ScannerAgentError`)."""

from __future__ import annotations

from scanner_agent.kernel import ScannerAgentError


class BillError(ScannerAgentError):
    """A bill command cannot be done (unknown bill, wrong state, bad import file)."""

    def __init__(self, message: str, *, code: str = "bad_request") -> None:
        super().__init__(message)
        self.code = code
        """A stable machine-readable kind: ``not_found``, ``conflict``, ``bad_request``."""
