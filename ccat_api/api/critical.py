"""Critical writes, declared once: a route of this kind only prepares its write (domain builds
the envelope); submitting it through the gateway and answering with the gateway's answer is
the same for every one, and so are its status, its documented answers and the
Idempotency-Key header, which ``CriticalWrites`` attaches together so they cannot disagree.

The fast path. FastAPI resolves a route's parameters anew for every request (a walk over the
dependency tree, a content-type parse, a cache key per dependency): about a fifth of a
buffered write's CPU. A critical write's parameters are always of the same few kinds (path
parameters, one JSON body, its ``ctx``), so ``CriticalRoute`` resolves them itself with the
same validators, then calls the same dependencies in the same order (authentication and the
permission check, then ``get_write_context``). Whatever it does not take for certain (a body
that is not plain ``application/json``, an escape that may hide a lone surrogate, a value
that fails validation, dependency overrides) goes to FastAPI's own handler, so every refusal
is FastAPI's, word for word.
"""

from __future__ import annotations

import functools
import inspect
import json
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter
from fastapi.params import Depends
from fastapi.responses import Response
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request

from ccat_api.api.deps import authorize_write, get_write_context
from ccat_api.api.responses import CRITICAL_CHANGED, CRITICAL_CREATED
from ccat_api.api.routing import CheckedRoute, Handler
from ccat_api.buffering.builder import PreparedWrite
from ccat_api.buffering.idempotency import Answer
from ccat_api.domain.context import WriteContext

Prepare = TypeVar("Prepare", bound=Callable[..., Awaitable[PreparedWrite]])
Submit = Callable[..., Awaitable[Response]]
JSON_CONTENT_TYPE = "application/json"


class CriticalWrites:
    """Registers a router's critical writes. The decorated function is the route as FastAPI
    reads it (its parameters, its name for the operation id); it takes its WriteContextDep as
    ``ctx`` and returns the prepared write."""

    def __init__(self, router: APIRouter) -> None:
        self._router = router

    def post(
        self, path: str, *, summary: str, created: bool = True
    ) -> Callable[[Prepare], Prepare]:
        """A POST: 201 when it creates the record its answer names, 200 when it changes one."""
        return self._declare("POST", path, summary, created)

    def put(self, path: str, *, summary: str) -> Callable[[Prepare], Prepare]:
        return self._declare("PUT", path, summary, created=False)

    def _declare(
        self, method: str, path: str, summary: str, created: bool
    ) -> Callable[[Prepare], Prepare]:
        declared = CRITICAL_CREATED if created else CRITICAL_CHANGED
        status_code = 201 if created else 200

        def register(prepare: Prepare) -> Prepare:
            if "ctx" not in inspect.signature(prepare).parameters:
                raise TypeError(f"{prepare.__name__}: a critical write takes its context as ctx")

            # FastAPI reads the parameters through __wrapped__ and passes them by name.
            @functools.wraps(prepare)
            async def submit(**values: Any) -> Response:
                ctx: WriteContext = values["ctx"]
                prepared = await prepare(**values)
                return answered(
                    await ctx.gateway.submit(prepared, ctx.claim, status_code=status_code)
                )

            FAST_PATHS[submit] = FastPath.of(prepare, path, submit)
            self._router.add_api_route(
                path,
                submit,
                methods=[method],
                summary=summary,
                route_class_override=CriticalRoute,
                **declared,
            )
            return prepare

        return register


def answered(answer: Answer) -> Response:
    """A critical write's answer as the gateway gave it (for a retry: the first, verbatim)."""
    return Response(
        orjson.dumps(answer.body), status_code=answer.status_code, media_type="application/json"
    )


@dataclass(frozen=True, slots=True)
class FastPath:
    """How to resolve one critical write's parameters without FastAPI's per-request walk."""

    submit: Submit
    path_params: tuple[tuple[str, TypeAdapter[Any]], ...]
    body: tuple[str, type[BaseModel]] | None

    @classmethod
    def of(cls, prepare: Callable[..., Any], path: str, submit: Submit) -> FastPath | None:
        """The fast path for ``prepare``, or None when a parameter is of a kind it does not
        resolve (then FastAPI resolves them all, as for any route)."""
        try:
            hints = typing.get_type_hints(prepare, include_extras=True)
        except NameError:  # a name only FastAPI's own resolution finds (a local type)
            return None
        path_params: list[tuple[str, TypeAdapter[Any]]] = []
        body: tuple[str, type[BaseModel]] | None = None
        for name, parameter in inspect.signature(prepare).parameters.items():
            hint = hints.get(name)
            if parameter.default is not inspect.Parameter.empty or hint is None:
                return None
            if name == "ctx":
                depends = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Depends)]
                if len(depends) != 1 or depends[0].dependency is not get_write_context:
                    return None
            elif f"{{{name}}}" in path:
                path_params.append((name, TypeAdapter(hint)))
            elif isinstance(hint, type) and issubclass(hint, BaseModel) and body is None:
                body = (name, hint)
            else:
                return None
        return cls(submit, tuple(path_params), body)

    def values(self, request: Request, body: bytes) -> dict[str, Any] | None:
        """The validated parameters, or None for anything FastAPI should judge itself."""
        values: dict[str, Any] = {}
        given = request.path_params
        try:
            for name, adapter in self.path_params:
                values[name] = adapter.validate_python(given[name])
            if self.body is not None:
                # An escape may spell a lone surrogate: CheckedRoute refuses those in its words.
                if b"\\u" in body or b"\\U" in body:
                    return None
                if request.headers.get("content-type") != JSON_CONTENT_TYPE:
                    return None
                name, model = self.body
                # FastAPI's parser (orjson reads an integer past 64 bits as a float) and
                # Python-mode validation of what it parsed, as FastAPI validates a body
                # (strict JSON-mode validation takes strings for more types than a body may).
                values[name] = model.model_validate(json.loads(body))
        except (ValidationError, ValueError, KeyError, RecursionError):
            # RecursionError: JSON nested past the parser's depth; FastAPI refuses it in the
            # one error shape.
            return None
        return values

    def handler(self, fallback: Handler) -> Handler:
        async def handle(request: Request) -> Response:
            values = self.values(request, await request.body())
            if values is None or request.app.dependency_overrides:
                return await fallback(request)
            # The dependencies FastAPI would solve, in its order: authentication and the
            # permission check, then admission and the Idempotency-Key claim.
            identity = await authorize_write(request, None)
            values["ctx"] = await get_write_context(request, identity)
            return await self.submit(**values)

        return handle


# submit -> its fast path (None: FastAPI resolves its parameters); read when routes compile.
FAST_PATHS: dict[Submit, FastPath | None] = {}


class CriticalRoute(CheckedRoute):
    """A critical write's route: the fast path in front of FastAPI's own handler. A route
    with dependencies of its own (its router's) gets FastAPI's handler only; dependencies
    given to ``include_router`` are not seen here, and the gateway's app gives none."""

    def get_route_handler(self) -> Handler:
        fallback = super().get_route_handler()
        fast = FAST_PATHS.get(self.endpoint)
        if fast is None or self.dependencies:
            return fallback
        return fast.handler(fallback)
