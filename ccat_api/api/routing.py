"""The route class every router of the gateway uses, and the 405s a literal path needs.

JSON text may spell a lone UTF-16 surrogate (``"\\ud800"``); Python's parser turns it into a
string that no UTF-8 encoder (the envelope's, PostgreSQL's, the answer's) will take. Such a
body is refused here, before validation, with a 422 that names where the surrogate sits;
everything else JSON allows goes on to validation unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Location = tuple[str | int, ...]


class CheckedRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handle = super().get_route_handler()
        if self.body_field is None:
            return handle

        async def checked(request: Request) -> Response:
            body = await request.body()
            # Only an escape can produce a surrogate (raw bytes must be UTF-8), so most bodies
            # are passed by this one scan without being parsed twice.
            if b"\\u" in body or b"\\U" in body:
                refuse_lone_surrogates(body)
            return await handle(request)

        return checked


def refuse_lone_surrogates(body: bytes) -> None:
    try:
        document = json.loads(body)
    except ValueError:
        return  # not JSON at all: FastAPI's own parse says what is wrong with it
    where = lone_surrogate_at(document)
    if where is not None:
        raise RequestValidationError(
            [
                {
                    "type": "string_unicode",
                    "loc": ("body", *where),
                    "msg": "contains a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff"
                    " escape), which is not text",
                    "input": None,
                }
            ]
        )


def lone_surrogate_at(value: Any, where: Location = ()) -> Location | None:
    """Where the first string (or object key) holding a lone surrogate sits, or None."""
    if isinstance(value, str):
        return None if is_text(value) else where
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = lone_surrogate_at(item, (*where, i))
            if found is not None:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            if not is_text(key):
                return (*where, printable(key))
            found = lone_surrogate_at(item, (*where, key))
            if found is not None:
                return found
    return None


def is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(value: str) -> str:
    """A string safe to put in an answer: surrogates written as their escapes."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def every_route(routes: Iterable[BaseRoute]) -> Iterator[Any]:
    """Each route as FastAPI matches it: an included router holds one context per route of
    its own (FastAPI builds a context when asked, compiling its validators)."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        yield from contexts() if contexts is not None else [route]


class LiteralPathRefusal(Route):
    """A 405 for a method that reaches a literal path only through a sibling's template."""


async def _method_not_allowed(_: Request) -> Response:
    raise HTTPException(status_code=405)


def refuse_other_methods_on_literal_paths(app: FastAPI) -> None:
    """``/executed_obs_units/start`` also matches the template of its sibling
    ``/executed_obs_units/{executed_obs_unit_id}``: a GET there would reach the read by id and
    be refused as a malformed id (422), where the document says the path serves POST only.
    Routes matched first answer 405 for the methods only a template brings."""
    routes = [
        (route.path, set(route.methods), route.path_regex)
        for route in every_route(app.routes)
        if getattr(route, "methods", None)
    ]
    refusals = []
    for path in sorted({p for p, _, _ in routes if "{" not in p}):
        own = set().union(*(m for p, m, _ in routes if p == path))
        borrowed = set().union(
            *(m for p, m, regex in routes if "{" in p and regex.match(path) is not None)
        )
        if borrowed - own:
            refusals.append(
                LiteralPathRefusal(
                    path, _method_not_allowed, methods=sorted(borrowed - own),
                    include_in_schema=False,
                )
            )  # fmt: skip
    app.router.routes[:0] = refusals
