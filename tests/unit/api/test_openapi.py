"""The OpenAPI document describes every route: a summary, its success answer with an example
that matches the response model, and every error it can give in the shape it gives it (401/403
when protected, 404 for a path id, 409/400 where the route can conflict or refuse a header,
422 where there is input, 503 everywhere, since even authentication reads the site's
database); and the document itself is valid OpenAPI."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.models import OpenAPI
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from ccat_api.api.deps import account_id, get_ledger, get_write_context
from ccat_api.api.responses import ErrorRead
from ccat_api.app import create_app
from ccat_api.config import Settings

PUBLIC = {"/health", "/auth/github/login", "/auth/github/callback", "/auth/refresh"}
# Routes open to any authenticated identity: no permission to lack, so no 403.
ANY_IDENTITY = {"/auth/me", "/auth/logout", "/api/ws/tickets"}
# /health answers 503 with its own report (degraded), not an error body.
OWN_503_BODY = {("GET", "/health")}
# Calls account_id only for an identity without manage:tokens, and the development identity
# (the only one without an account) is an admin: it cannot answer 400.
ACCOUNT_ID_NEVER_400 = {("DELETE", "/tokens/{token_id}")}


@functools.cache
def _app() -> FastAPI:
    return create_app(Settings(development=True))


@functools.cache
def _document() -> dict[str, Any]:
    document: dict[str, Any] = _app().openapi()
    return document


def _operations() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    document = _document()
    schemas = document["components"]["schemas"]
    return [
        (path, method.upper(), operation, schemas)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


@dataclass(frozen=True)
class Route:
    """A documented route as FastAPI runs it (included routers are kept as wrappers)."""

    path: str
    method: str
    status_code: int
    response_model: Any
    responses: dict[int | str, Any]
    dependant: Dependant
    endpoint: Any


def _routes() -> Iterator[Route]:
    for route in _app().routes:
        contexts = [route] if isinstance(route, APIRoute) else []
        if hasattr(route, "effective_route_contexts"):
            contexts = list(route.effective_route_contexts())
        for ctx in contexts:
            if not ctx.include_in_schema:
                continue
            for method in sorted(set(ctx.methods or ()) - {"HEAD"}):
                yield Route(
                    ctx.path, method, ctx.status_code or 200, ctx.response_model,
                    dict(ctx.responses), ctx.dependant, ctx.endpoint,
                )  # fmt: skip


def _resolve(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return schemas[ref.rsplit("/", 1)[1]] if ref else schema


def _body_schema(operation: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    schema: dict[str, Any] = content["schema"]
    for option in schema.get("anyOf", []):  # an optional body
        if "$ref" in option:
            schema = option
    return _resolve(schema, schemas)


def _success(operation: dict[str, Any]) -> list[str]:
    return [code for code in operation["responses"] if code[0] in "23"]


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def _missing(code: str, wanted: set[tuple[str, str]]) -> list[str]:
    documented = {(m, p) for p, m, op, _ in _operations() if code in op["responses"]}
    return sorted(f"{m} {p}" for m, p in wanted - documented)


def _paths(value: Any, prefix: str = "") -> set[str]:
    """The shape of a JSON value: the path of every object key in it."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            found |= {f"{prefix}.{key}"} | _paths(item, f"{prefix}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found |= _paths(item, f"{prefix}[{i}]")
    return found


def test_the_document_is_valid_openapi_and_every_reference_resolves() -> None:
    document = _document()
    OpenAPI.model_validate(document)
    assert document["openapi"].startswith("3.1")
    schemas = document["components"]["schemas"]
    text = json.dumps(document)
    refs = {part.split('"', 1)[0] for part in text.split('"$ref": "')[1:]}
    assert {r for r in refs if r.rsplit("/", 1)[1] not in schemas} == set()
    operation_ids = [op["operationId"] for _, _, op, _ in _operations()]
    assert len(operation_ids) == len(set(operation_ids))


def test_every_operation_has_a_summary() -> None:
    missing = [f"{m} {p}" for p, m, op, _ in _operations() if not op.get("summary")]
    assert missing == []


def test_every_operation_has_one_success_answer_with_an_example() -> None:
    problems = []
    for path, method, operation, schemas in _operations():
        success = _success(operation)
        if len(success) != 1:
            problems.append(f"{method} {path}: success answers {success}")
            continue
        answer = operation["responses"][success[0]]
        if success[0] == "204":
            if answer.get("content"):
                problems.append(f"{method} {path}: 204 with a body")
        elif success[0].startswith("3"):
            if "Location" not in answer.get("headers", {}):
                problems.append(f"{method} {path}: redirect without a Location header")
        elif not answer.get("content"):
            problems.append(f"{method} {path}: no body documented")
        else:
            for media_type, content in answer["content"].items():
                schema = _resolve(content.get("schema", {}), schemas)
                if not (
                    content.get("example") or content.get("examples") or schema.get("examples")
                ):
                    problems.append(f"{method} {path}: no {media_type} example")
    assert problems == []


def test_every_example_answer_has_exactly_the_response_models_fields() -> None:
    """Checked on the examples as declared: FastAPI drops null values from the examples it
    writes into the document (its encoder excludes None), so the document shows fewer keys."""
    problems = []
    checked = 0
    for route in _routes():
        if route.response_model is None:
            continue
        content = route.responses.get(route.status_code, {}).get("content", {})
        example = content.get("application/json", {}).get("example")
        if example is None:
            problems.append(f"{route.method} {route.path}: no example to check")
            continue
        adapter: TypeAdapter[Any] = TypeAdapter(route.response_model)
        try:
            parsed = adapter.validate_json(json.dumps(example))
        except ValueError as exc:
            problems.append(f"{route.method} {route.path}: {exc}")
            continue
        expected = _paths(json.loads(adapter.dump_json(parsed)))
        if _paths(example) != expected:
            problems.append(
                f"{route.method} {route.path}: example lacks {sorted(expected - _paths(example))}"
                f" and has extra {sorted(_paths(example) - expected)}"
            )
        checked += 1
    assert problems == []
    assert checked > 50  # the walk found the routes at all


def test_every_error_example_has_the_error_shape() -> None:
    problems = []
    for path, method, operation, _ in _operations():
        for code, answer in operation["responses"].items():
            if code[0] not in "45" or (method, path) in OWN_503_BODY:
                continue
            content = answer.get("content", {}).get("application/json", {})
            if content.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1] != "ErrorRead":
                problems.append(f"{method} {path} {code}: not the ErrorRead shape")
            elif "example" not in content:
                problems.append(f"{method} {path} {code}: no example")
            else:
                ErrorRead.model_validate(content["example"])
    assert problems == []


def test_protected_operations_document_401_and_403() -> None:
    missing = []
    for path, method, operation, _ in _operations():
        if path in PUBLIC:
            continue
        needed = {"401"} if path in ANY_IDENTITY else {"401", "403"}
        if not needed <= set(operation["responses"]):
            missing.append(f"{method} {path}")
    assert missing == []


def test_protected_operations_ask_for_a_bearer_token_and_public_ones_for_none() -> None:
    """So /docs can authorize and a generated client sends the token where it is needed."""
    schemes = _document()["components"]["securitySchemes"]
    assert [s for s in schemes.values() if s == {**s, "type": "http", "scheme": "bearer"}]
    (name,) = schemes
    wrong = [
        f"{method} {path}"
        for path, method, operation, _ in _operations()
        if path.startswith("/console") is False
        and (operation.get("security") == [{name: []}]) == (path in PUBLIC)
    ]
    assert wrong == []


def test_operations_with_input_document_422() -> None:
    missing = [
        f"{m} {p}"
        for p, m, op, _ in _operations()
        if (op.get("parameters") or op.get("requestBody")) and "422" not in op["responses"]
    ]
    assert missing == []


def test_operations_with_a_path_id_document_404() -> None:
    with_path_id = {
        (m, p)
        for p, m, op, _ in _operations()
        if any(param["in"] == "path" for param in op.get("parameters", []))
    }
    assert len(with_path_id) > 20
    assert _missing("404", with_path_id) == []


def test_every_operation_documents_503() -> None:
    """Authentication reads tokens from the site's database, writes need Redis or main, and
    the public login flow needs main (or GitHub's configuration): nothing is exempt."""
    assert _missing("503", {(m, p) for p, m, _, _ in _operations()}) == []


def test_operations_document_the_400_404_and_409_their_dependencies_can_raise() -> None:
    needs: dict[str, set[tuple[str, str]]] = {"400": set(), "404": set(), "409": set()}
    for route in _routes():
        key = (route.method, route.path)
        calls = set(_calls(route.dependant))
        if get_write_context in calls:  # Idempotency-Key, taken values, wrong states
            needs["400"].add(key)
            needs["409"].add(key)
        if get_ledger in calls:  # the main site keeps no buffer
            needs["404"].add(key)
        # The development identity has no account.
        if account_id.__name__ in route.endpoint.__code__.co_names and (
            key not in ACCOUNT_ID_NEVER_400
        ):
            needs["400"].add(key)
    assert all(needs.values())  # the walk found them at all
    assert {code: _missing(code, wanted) for code, wanted in needs.items()} == {
        "400": [],
        "404": [],
        "409": [],
    }


def test_critical_writes_document_429_and_retry_after_on_their_refusals() -> None:
    """get_write_context counts the write against the token's quota (429) and asks the
    buffer's capacity (503): both answers tell the client when to come back."""
    critical = {
        (route.method, route.path)
        for route in _routes()
        if get_write_context in set(_calls(route.dependant))
    }
    assert critical
    assert _missing("429", critical) == []
    responses = {(m, p): op["responses"] for p, m, op, _ in _operations()}
    for key in critical:
        for code in ("429", "503"):
            assert "Retry-After" in responses[key][code].get("headers", {}), (key, code)


def test_every_request_body_has_an_example() -> None:
    missing = []
    for path, method, operation, schemas in _operations():
        schema = _body_schema(operation, schemas)
        if schema is None or (schema.get("type") == "object" and not schema.get("properties")):
            continue  # free-form objects (preferences) have no fixed shape to exemplify
        if not schema.get("examples"):
            missing.append(f"{method} {path}")
    assert missing == []


def test_every_constraint_is_written_as_json_schema() -> None:
    """FastAPI emits a parameter's bounds as raw ``gt``/``le`` keys (which no client or fuzzer
    reads) when a validator comes before them in its annotation; the fuzzer then generated
    out-of-range ids that the document seemed to allow."""
    raw = {"gt", "ge", "lt", "le"}

    def misspelled(value: Any, where: str) -> Iterator[str]:
        if isinstance(value, dict):
            if "type" in value and raw & set(value):
                yield where
            for key, item in value.items():
                yield from misspelled(item, f"{where}/{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                yield from misspelled(item, f"{where}[{i}]")

    assert list(misspelled(_document(), "")) == []


def test_the_idempotency_key_pattern_admits_exactly_the_printable_latin_1() -> None:
    import re

    from ccat_api.api.deps import IDEMPOTENCY_KEY_PARAMETER

    schema = IDEMPOTENCY_KEY_PARAMETER["schema"]
    assert isinstance(schema, dict)
    pattern = re.compile(schema["pattern"])
    assert [hex(i) for i in range(256) if bool(pattern.match(chr(i))) != chr(i).isprintable()] == []
