"""How the gateway refuses: every error, whoever raised it (our error tree, validation, the
framework's routing and body parsing, a backend gone away), rendered in the one shape
``{"detail", "field", "code"}`` with the status the OpenAPI document lists."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ccat_api.api.routing import LiteralPathRefusal, every_route, printable
from ccat_api.buffering.gateway import ReplayedAnswer
from ccat_api.db.failures import refused_value, unreachable
from ccat_api.errors import CcatError, ServiceUnavailable, Unprocessable

log = logging.getLogger(__name__)


def install(app: FastAPI) -> None:
    app.add_exception_handler(CcatError, _ccat_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ReplayedAnswer, _replayed_answer)
    for backend_error in (RedisError, OSError):
        app.add_exception_handler(backend_error, _backend_unavailable)
    app.add_exception_handler(DBAPIError, _database_error)


def _field_of(loc: tuple[str | int, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    name = ""
    for part in parts:
        # A key is the client's text: it may hold what an answer cannot encode.
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return printable(name) or "body"


async def _ccat_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CcatError)
    headers = {}
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if errors and errors[0]["type"] == "json_invalid":
        reason = errors[0].get("ctx", {}).get("error", "not JSON")
        position = errors[0]["loc"][-1]
        return _not_json(f"body: not valid JSON ({reason} at byte {position})")
    problems = [{"field": _field_of(tuple(e["loc"])), "message": e["msg"]} for e in errors]
    first = problems[0] if problems else {"field": "body", "message": "invalid request"}
    return JSONResponse(
        {
            "detail": f"{first['field']}: {first['message']}",
            "field": first["field"],
            "code": "validation_error",
            "errors": problems,
        },
        status_code=422,
    )


def _not_json(detail: str) -> JSONResponse:
    """One answer for a body that cannot be read as JSON, whichever layer noticed (FastAPI's
    parser for bad syntax, Starlette's for bytes that are not UTF-8): the 422 every route
    with a body documents, as it always was for bad syntax."""
    error = Unprocessable(detail, field="body")
    return JSONResponse(error.to_dict() | {"code": "invalid_json"}, error.status_code)


# Starlette and FastAPI raise these themselves (no route, wrong method, unreadable body).
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}
_UNPARSEABLE_BODY = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> Response:
    """The framework's own refusals, in the one error shape."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.detail == _UNPARSEABLE_BODY:
        return _not_json("body: could not be read as JSON (not UTF-8, or nested too deeply)")
    headers = dict(exc.headers or {})
    detail = str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.url.path}"
    elif exc.status_code == 405:
        allowed = _methods_of(request)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse(
        {"detail": detail, "field": None, "code": code}, exc.status_code, headers=headers
    )


def _methods_of(request: Request) -> list[str]:
    """Every method some route serves at this path. Starlette's own Allow header names only
    the first route whose path matched, and a path here often has one route per method. A
    literal path is its own resource: ``/executed_obs_units/start`` is not also the
    ``{executed_obs_unit_id}`` read, though that template matches it too."""
    scope = {**request.scope, "method": "OPTIONS"}  # matches no route fully: partials only
    found: list[tuple[str, set[str]]] = []
    for route in every_route(request.app.routes):
        if isinstance(route, LiteralPathRefusal):
            continue  # answers 405 for what only a template serves: not a method here
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            found.append((route.path, set(getattr(route, "methods", None) or ())))
    literal = [methods for path, methods in found if path == request.url.path]
    return sorted(set().union(*(literal or [methods for _, methods in found])))


async def _replayed_answer(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReplayedAnswer)
    return JSONResponse(exc.answer.body, status_code=exc.answer.status_code)


async def _backend_unavailable(_: Request, exc: Exception) -> JSONResponse:
    which = "the site's buffer (Redis)" if isinstance(exc, RedisError) else "a database it needs"
    log.warning("%s unavailable: %s", which, exc)
    error = ServiceUnavailable(f"this request cannot be served now: {which} is unavailable")
    return await _ccat_error(_, error)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """Bad input that got past validation is still the client's problem, not an outage: a
    503 would have it retry the same request forever. Everything else that is not a lost
    connection is a bug and stays a 500."""
    assert isinstance(exc, DBAPIError)
    refused = refused_value(exc)
    if refused is not None:
        log.warning("database refused a value: %s", refused)
        error = Unprocessable(f"a value in this request is out of range or malformed: {refused}")
        return await _ccat_error(request, error)
    if unreachable(exc):
        return await _backend_unavailable(request, exc)
    raise exc
