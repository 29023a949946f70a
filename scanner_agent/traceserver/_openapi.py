"""Trace API v1's OpenAPI 3.1 document, as ``GET /openapi.json`` serves it.

The one source is ``docs/trace-api.openapi.yaml``; the package carries it as
``trace-api.openapi.yaml`` beside this module (a link to that file in the
checkout, a copy in a wheel or the Debian package's venv), so an installed
service serves the document it was built with.  It is read and converted to
JSON once, when the first app is made: a service installed without it fails
at start, not at the first request.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any, Final

import yaml

__all__ = ["DOCUMENT", "openapi_document", "openapi_json"]

DOCUMENT: Final = "trace-api.openapi.yaml"
"""The document's file name inside this package."""


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The document as parsed from the package's YAML (``yaml.safe_load``: data only)."""
    text = resources.files(__package__).joinpath(DOCUMENT).read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    if not isinstance(document, dict) or "openapi" not in document:
        raise RuntimeError(f"{DOCUMENT} is not an OpenAPI document")
    return document


@functools.cache
def openapi_json() -> bytes:
    """The document as compact UTF-8 JSON."""
    return json.dumps(openapi_document(), ensure_ascii=False, separators=(",", ":")).encode()
