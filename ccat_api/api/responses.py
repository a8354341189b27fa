"""Responses documented once and attached to routes, so OpenAPI shows the real shapes: the
success answer with an example (from ``api/examples.py``) and every error a route can give."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from ccat_api.api import examples
from ccat_api.api.deps import WRITE_ROUTE
from ccat_api.buffering.query import Row
from ccat_api.buffering.reads import MergedReader
from ccat_api.errors import NotFound
from ccat_api.schemas.common import WriteAccepted

Responses = dict[int | str, dict[str, Any]]


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorRead(BaseModel):
    detail: str
    field: str | None = None
    code: str
    errors: list[FieldProblem] | None = Field(
        default=None, description="For a validation error (422): every problem found"
    )


_ERRORS: dict[int, tuple[str, dict[str, Any]]] = {
    400: (
        "Malformed request (for example a bad Idempotency-Key header)",
        {
            "detail": "Idempotency-Key must be 1-200 printable characters",
            "field": "Idempotency-Key",
            "code": "bad_request",
        },
    ),
    401: (
        "Missing, malformed, unknown, expired or revoked token",
        {"detail": "API token revoked", "field": None, "code": "unauthorized"},
    ),
    403: (
        "The token's role lacks the permission this route needs",
        {
            "detail": "role 'viewer' may not do this: it needs write:observations",
            "field": None,
            "code": "forbidden",
        },
    ),
    404: (
        "No such record",
        {
            "detail": f"executed obs unit {examples.UNIT_ID} not found",
            "field": None,
            "code": "not_found",
        },
    ),
    409: (
        "Conflict with existing data or the record's state",
        {
            "detail": f"status: raw data package {examples.PACKAGE_ID} is complete, not building",
            "field": "status",
            "code": "state_conflict",
        },
    ),
    422: (
        "Invalid body, parameter or reference; `field` names the culprit",
        {
            "detail": "obs_unit_id: Input should be greater than 0",
            "field": "obs_unit_id",
            "code": "validation_error",
            "errors": [{"field": "obs_unit_id", "message": "Input should be greater than 0"}],
        },
    ),
    429: (
        "The token has used its quota of critical writes for now (`CCAT_WRITE_RATE_LIMIT`);"
        " retry after `Retry-After` seconds",
        {
            "detail": "this token has used its quota of critical writes (50 per 1 second);"
            " retry after 1 s",
            "field": None,
            "code": "rate_limited",
        },
    ),
    503: (
        "A backing service (database, Redis, main) is unavailable, or the site's write buffer"
        " is near capacity (`buffer_near_capacity`); retry after `Retry-After` seconds",
        {
            "detail": "this request cannot be served now: a database it needs is unavailable",
            "field": None,
            "code": "service_unavailable",
        },
    ),
}
RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}


def errors(*codes: int, json_route: bool = True) -> Responses:
    """Error answers, always JSON. FastAPI files a ``model`` under the route's own media
    type, so a route answering something else (``json_route=False``) refers to the schema,
    which the JSON routes' ``model`` puts into the document."""
    documented: Responses = {}
    for code in codes:
        description, example = _ERRORS[code]
        content: dict[str, Any] = {"example": example}
        documented[code] = {"description": description, "content": {"application/json": content}}
        if json_route:
            documented[code]["model"] = ErrorRead
        else:
            content["schema"] = {"$ref": "#/components/schemas/ErrorRead"}
        if code in (429, 503):
            documented[code]["headers"] = RETRY_AFTER_HEADER
    return documented


def documented(
    example: Any, *codes: int, status: int = 200, media_type: str = "application/json"
) -> Responses:
    """A route's success answer, with an example, and the errors it can answer with. FastAPI
    merges the example into the response model's schema for ``status``."""
    return {
        status: {"content": {media_type: {"example": example}}},
        **errors(*codes, json_route=media_type == "application/json"),
    }


# Every authenticated route can be refused (401/403) or find the site's database or Redis
# away (503); 422 wherever a parameter or body can be invalid.
READ_CODES = (401, 403, 422, 503)
WRITE_CODES = (400, 401, 403, 404, 409, 422, 503)
# Critical writes answer the same shape at both kinds of site: their answer, every error
# they can give and the Idempotency-Key header (attached by ``api/critical.py``). Only they
# count against a token's write quota (429).
CRITICAL_CODES = (*WRITE_CODES, 429)
CRITICAL_CREATED: dict[str, Any] = {
    "status_code": 201,
    "response_model": WriteAccepted,
    "responses": documented(examples.WRITE_ACCEPTED, *CRITICAL_CODES, status=201),
    "openapi_extra": WRITE_ROUTE,
}
CRITICAL_CHANGED: dict[str, Any] = {
    "response_model": WriteAccepted,
    "responses": documented(examples.WRITE_ACCEPTED, *CRITICAL_CODES),
    "openapi_extra": WRITE_ROUTE,
}


def read_one(example: Any, *codes: int) -> Responses:
    """A read of one record by id: 404 when there is none."""
    return documented(example, *READ_CODES, 404, *codes)


def read_list(item_example: Any, *codes: int) -> Responses:
    """A list in the common envelope (``items``, ``total``, ``limit``, ``offset``)."""
    return documented(examples.page(item_example), *READ_CODES, *codes)


async def found(reader: MergedReader, table: str, pk: UUID | int, noun: str) -> Row:
    """One record as this site reads it (replica and overlay), or a 404 that names it."""
    row = await reader.get(table, pk)
    if row is None:
        raise NotFound(f"{noun} {pk} not found")
    return row
