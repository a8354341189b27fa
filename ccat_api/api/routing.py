"""The route class every router of the gateway uses.

JSON text may spell a lone UTF-16 surrogate (``"\\ud800"``); Python's parser turns it into a
string that no UTF-8 encoder (the envelope's, PostgreSQL's, the answer's) will take. Such a
body is refused here, before validation, with a 422 that names where the surrogate sits;
everything else JSON allows goes on to validation unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

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
