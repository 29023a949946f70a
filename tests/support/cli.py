"""Checks of the CLI's --json output."""

from __future__ import annotations

import re
from typing import Any


def json_problems(value: Any, path: str = "") -> list[str]:
    """Times that are not ISO 8601 with an offset, and numbers that look like Unix times."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}"
            if (key == "at" or str(key).endswith("_at")) and isinstance(item, dict):
                found += [f"{where}.{k}: {v!r}" for k, v in item.items() if not _iso_or_none(v)]
            elif key == "at" or str(key).endswith("_at"):
                if not _iso_or_none(item):
                    found.append(f"{where}: {item!r}")
            else:
                found += json_problems(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += json_problems(item, f"{path}[{i}]")
    elif isinstance(value, float | int) and not isinstance(value, bool) and 1e9 <= value < 1e11:
        found.append(f"{path}: {value!r} looks like a Unix time")
    return found


def _iso_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(ISO.match(value)))


ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")
