"""Bad input on every write route, generated from the route table: a 422 that names the
field, and no trace in the buffer or in main."""

from __future__ import annotations

from typing import Any

from ccat_api.app import create_app
from ccat_api.config import Settings
from ccat_api.db.models import Base
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.routes import RouteInfo, api_routes, requirement
from tests.support import buffer_state, client, fetch, serve


def write_routes(settings: Settings) -> list[RouteInfo]:
    found = []
    for route in api_routes(create_app(settings)):
        needs = requirement(route.dependant)
        writes = route.method in {"POST", "PUT", "PATCH"} and route.dependant.body_params
        if writes and needs and not needs.public:
            found.append(route)
    return found


def _takes_any_object(route: RouteInfo) -> bool:
    (body,) = route.dependant.body_params
    return getattr(body.field_info.annotation, "__origin__", None) is dict or "dict" in str(
        body.field_info.annotation
    )


async def main_row_counts(stack: Stack) -> dict[str, int]:
    tables = sorted(Base.metadata.tables)
    query = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables)
    return {r[0]: int(r[1]) for r in await fetch(stack.main_db.dsn(), query)}


BAD_BODIES: list[tuple[str, Any]] = [
    ("unknown field", {"__bogus__": 1}),
    ("not an object", [1, 2, 3]),
    ("wrong types", "a string"),
]


async def test_every_write_route_refuses_malformed_bodies_and_writes_nothing(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    routes = write_routes(secondary_settings)
    assert len(routes) > 25
    before = await main_row_counts(stack)
    failures = []
    async with serve(secondary_settings) as url, client(url, tokens.admin) as http:
        for route in routes:
            free_form = _takes_any_object(route)
            for case, body in BAD_BODIES:
                if free_form and case == "unknown field":
                    continue  # preferences are any JSON object by design
                r = await http.request(route.method, route.sample_path(), json=body)
                answer = (
                    r.json()
                    if r.headers.get("content-type", "").startswith("application/json")
                    else {}
                )
                if (
                    r.status_code != 422
                    or not answer.get("field")
                    or answer["field"] not in answer.get("detail", "")
                ):
                    failures.append(
                        f"{route.method} {route.path} [{case}] -> {r.status_code} {r.text[:150]}"
                    )
    assert failures == []
    assert await buffer_state(secondary_settings.redis_url, secondary_settings.site_name) == {
        "stream": 0, "overlay": 0, "dead": 0, "awaiting_replica": 0, "idempotency": 0,
    }  # fmt: skip
    assert await main_row_counts(stack) == before
