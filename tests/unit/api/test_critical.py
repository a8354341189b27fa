"""Critical writes declared through CriticalWrites: the route only prepares its write; the
gateway's answer is what the client gets, with the status the route is documented with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any
from uuid import UUID

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI

from ccat_api.api.critical import CriticalWrites
from ccat_api.buffering.builder import PreparedWrite
from ccat_api.buffering.idempotency import Answer


@dataclass
class _Gateway:
    submitted: list[tuple[PreparedWrite, int]] = field(default_factory=list)

    async def submit(self, prepared: PreparedWrite, claim: object, *, status_code: int) -> Answer:
        self.submitted.append((prepared, status_code))
        return Answer(status_code, {"id": str(prepared.id)})


@dataclass
class _Context:
    gateway: _Gateway
    claim: None = None


GATEWAY = _Gateway()
PREPARED = PreparedWrite(envelope=None, id=UUID(int=7), created=[])  # type: ignore[arg-type]


async def _context() -> _Context:
    return _Context(GATEWAY)


ContextDep = Annotated[Any, Depends(_context)]


def _app() -> FastAPI:
    router = APIRouter()
    critical = CriticalWrites(router)

    @critical.post("/things", summary="Create a thing")
    async def create_thing(ctx: ContextDep) -> PreparedWrite:
        return PREPARED

    @critical.post("/things/{thing_id}/reset", summary="Reset a thing", created=False)
    async def reset_thing(thing_id: int, ctx: ContextDep) -> PreparedWrite:
        return PREPARED

    @critical.put("/things/{thing_id}", summary="Change a thing")
    async def change_thing(thing_id: int, ctx: ContextDep) -> PreparedWrite:
        return PREPARED

    app = FastAPI()
    app.include_router(router)
    return app


@pytest.mark.parametrize(
    ("method", "path", "template", "status"),
    [
        ("POST", "/things", "/things", 201),
        ("POST", "/things/1/reset", "/things/{thing_id}/reset", 200),
        ("PUT", "/things/1", "/things/{thing_id}", 200),
    ],
)
async def test_a_critical_write_answers_the_gateways_answer_with_its_documented_status(
    method: str, path: str, template: str, status: int
) -> None:
    app = _app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        r = await http.request(method, path)
    assert (r.status_code, r.json()) == (status, {"id": str(UUID(int=7))})
    assert GATEWAY.submitted[-1] == (PREPARED, status)
    documented = app.openapi()["paths"][template][method.lower()]["responses"]
    assert {str(status), "409", "422", "429"} <= set(documented)


def test_a_critical_write_without_a_ctx_parameter_is_refused_where_it_is_declared() -> None:
    critical = CriticalWrites(APIRouter())
    with pytest.raises(TypeError, match="takes its context as ctx"):

        @critical.post("/things", summary="Create a thing")
        async def create_thing(context: ContextDep) -> PreparedWrite:
            return PREPARED


def test_every_critical_write_of_the_gateway_resolves_its_parameters_on_the_fast_path() -> None:
    """A parameter of a kind the fast path does not know would quietly send every request
    of that route through FastAPI's resolution (correct, but a fifth of a write's CPU)."""
    from ccat_api.api import executed_obs_units, raw_data, transfers  # noqa: F401
    from ccat_api.api.critical import FAST_PATHS

    gateway = {
        f"{submit.__module__}.{submit.__name__}": fast
        for submit, fast in FAST_PATHS.items()
        if submit.__module__.startswith("ccat_api.")
    }
    assert len(gateway) == 12
    assert [name for name, fast in gateway.items() if fast is None] == []
