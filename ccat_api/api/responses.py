"""Error responses documented once and attached to routes, so OpenAPI shows the real shape."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from ccat_api.buffering.reads import Page
from ccat_api.domain.schemas import PageRead

ReadT = TypeVar("ReadT", bound=BaseModel)


class ErrorRead(BaseModel):
    detail: str
    field: str | None = None
    code: str


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed request (for example a bad Idempotency-Key header)",
        401: "Missing, malformed, unknown, expired or revoked token",
        403: "The token's role lacks the permission this route needs",
        404: "No such record",
        409: "Conflict with existing data or the record's state",
        422: "Invalid body or reference; `field` names the culprit",
        503: "A backing service is unavailable; retry after `Retry-After` seconds",
    }
    return {c: {"model": ErrorRead, "description": descriptions[c]} for c in codes}


READ_ERRORS = errors(401, 403, 422, 503)
WRITE_ERRORS = errors(400, 401, 403, 404, 409, 422, 503)


def page_of(read_model: type[ReadT], page: Page) -> PageRead[ReadT]:
    return PageRead[read_model](  # type: ignore[valid-type]
        items=[read_model.model_validate(r) for r in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )
