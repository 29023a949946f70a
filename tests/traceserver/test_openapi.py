"""docs/trace-api.openapi.yaml: valid OpenAPI 3.1, served as JSON at /openapi.json, and naming
exactly the routes the service serves (no more, no fewer)."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openapi_spec_validator import OpenAPIV31SpecValidator
from starlette.routing import Route

from scanner_agent.traceserver import TraceServerThread, TraceStore, create_app
from tests.traceserver._stores import BACKENDS, fresh_db

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "trace-api.openapi.yaml"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def document() -> dict[str, Any]:
    loaded = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_the_document_is_valid_openapi_3_1() -> None:
    spec = document()
    assert spec["openapi"].startswith("3.1.")
    errors = [str(error) for error in OpenAPIV31SpecValidator(spec).iter_errors()]
    assert errors == []


def test_an_invalid_document_is_told_so() -> None:
    """The validator sees a parameter in a place OpenAPI 3 has not (so the check above can fail)."""
    spec = document()
    spec["paths"]["/v1/batches"]["post"]["parameters"][0]["in"] = "body"
    assert list(OpenAPIV31SpecValidator(spec).iter_errors()) != []


def test_the_package_carries_the_document_of_docs() -> None:
    """What an installed service serves is this file (the package's copy; here a link to it)."""
    packaged = resources.files("scanner_agent.traceserver").joinpath("trace-api.openapi.yaml")
    assert packaged.read_bytes() == DOCUMENT.read_bytes()


def served_operations(tmp_path: Path) -> set[tuple[str, str]]:
    """``(method, path)`` of every route of the app, paths written as OpenAPI templates."""
    with TraceStore(tmp_path / "t.db") as store:
        app = create_app(store, "token")
    operations: set[tuple[str, str]] = set()
    for route in app.routes:
        assert isinstance(route, Route), route
        path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)
        # Starlette answers HEAD wherever it answers GET: not an operation of its own.
        operations |= {(method.lower(), path) for method in route.methods or () if method != "HEAD"}
    return operations


def documented_operations() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document()["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_route_is_documented_and_every_documented_route_is_served(tmp_path: Path) -> None:
    served = served_operations(tmp_path)
    assert ("post", "/v1/batches") in served
    assert served == documented_operations()


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_service_serves_the_document_as_json_without_a_token(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with TraceServerThread(fresh_db(backend, tmp_path, request), "token") as server:
        reply = httpx.get(server.url + "/openapi.json", timeout=10)
        events = httpx.get(server.url + "/v1/events", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert json.loads(reply.content) == document()
    assert events.status_code == 401  # the API itself still needs the token
