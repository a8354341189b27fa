"""The OpenAPI document describes every route: a summary, its error responses, and for
every request body an example."""

from __future__ import annotations

from typing import Any

from ccat_api.app import create_app
from ccat_api.config import Settings

PUBLIC = {"/health", "/auth/github/login", "/auth/github/callback", "/auth/refresh"}
# Routes open to any authenticated identity: no permission to lack, so no 403.
ANY_IDENTITY = {"/auth/me", "/auth/logout"}


def _operations() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    document = create_app(Settings(development=True)).openapi()
    schemas = document["components"]["schemas"]
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            found.append((path, method.upper(), operation, schemas))
    return found


def _body_schema(operation: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    schema: dict[str, Any] = content["schema"]
    for option in schema.get("anyOf", []):  # an optional body
        if "$ref" in option:
            schema = option
    ref = schema.get("$ref")
    return schemas[ref.rsplit("/", 1)[1]] if ref else schema


def test_every_operation_has_a_summary() -> None:
    missing = [f"{m} {p}" for p, m, op, _ in _operations() if not op.get("summary")]
    assert missing == []


def test_protected_operations_document_401_and_403() -> None:
    missing = []
    for path, method, operation, _ in _operations():
        if path in PUBLIC:
            continue
        needed = {"401"} if path in ANY_IDENTITY else {"401", "403"}
        if not needed <= set(operation["responses"]):
            missing.append(f"{method} {path}")
    assert missing == []


def test_operations_with_input_document_422() -> None:
    missing = [
        f"{m} {p}"
        for p, m, op, _ in _operations()
        if (op.get("parameters") or op.get("requestBody")) and "422" not in op["responses"]
    ]
    assert missing == []


def test_every_request_body_has_an_example() -> None:
    missing = []
    for path, method, operation, schemas in _operations():
        schema = _body_schema(operation, schemas)
        if schema is None or (schema.get("type") == "object" and not schema.get("properties")):
            continue  # free-form objects (preferences) have no fixed shape to exemplify
        if not schema.get("examples"):
            missing.append(f"{method} {path}")
    assert missing == []
