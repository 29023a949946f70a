"""A bill's optional platform parameters: read from ``NAME=VALUE`` texts, checked like
``alihealth.extra`` (one rule, :func:`scanner_agent.kernel.platform_params`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from scanner_agent.bills._errors import BillError
from scanner_agent.kernel import ConfigError, platform_params


def parse_param_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``NAME=VALUE`` texts (``bill open --param``, the TUI's Params field) as a table.

    Only the form is checked here (split at the first ``=``; a name given once);
    :meth:`BillBook.open` checks the names and values, so every client gets the
    same error naming the parameter.

    Raises:
        BillError: a text without ``=`` or a name, or a name given twice.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise BillError(f"Failed to read parameter {pair!r}: expected NAME=VALUE")
        if name in out:
            raise BillError(f"Failed to read parameter {name!r}: given twice")
        out[name] = value.strip()
    return out


def checked_params(number: str, params: Mapping[str, Any]) -> dict[str, str]:
    """A bill's optional platform parameters, checked like ``alihealth.extra``."""
    try:
        return platform_params(params, "params")
    except ConfigError as exc:
        raise BillError(f"Failed to open bill {number!r}: {exc}") from None
