"""Critical writes, declared once: a route of this kind only prepares its write (domain builds
the envelope); submitting it through the gateway and answering with the gateway's answer is
the same for every one, and so are its status, its documented answers and the
Idempotency-Key header, which ``CriticalWrites`` attaches together so they cannot disagree.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from ccat_api.api.responses import CRITICAL_CHANGED, CRITICAL_CREATED
from ccat_api.buffering.builder import PreparedWrite
from ccat_api.buffering.idempotency import Answer
from ccat_api.domain.context import WriteContext

Prepare = TypeVar("Prepare", bound=Callable[..., Awaitable[PreparedWrite]])


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

            self._router.add_api_route(path, submit, methods=[method], summary=summary, **declared)
            return prepare

        return register


def answered(answer: Answer) -> Response:
    """A critical write's answer as the gateway gave it (for a retry: the first, verbatim)."""
    return Response(
        orjson.dumps(answer.body), status_code=answer.status_code, media_type="application/json"
    )
