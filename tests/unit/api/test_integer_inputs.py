"""Every integer a request carries is bounded where it is declared, so validation refuses
it (a 422 naming the field) before the driver does (a DataError, once a 503): an id fits
PostgreSQL's integer, what every integer key is; any other integer fits a bigint."""

from __future__ import annotations

import functools

from ccat_api.app import create_app
from ccat_api.config import Settings
from tests.routes import RouteInfo, api_routes

PAST_INT4 = 2**31
PAST_INT8 = 2**63


@functools.cache
def _routes() -> list[RouteInfo]:
    return api_routes(create_app(Settings(development=True)))


def test_every_integer_id_a_route_takes_is_refused_past_postgresql_integer() -> None:
    slots = [(route, slot) for route in _routes() for slot in route.integer_ids()]
    assert len(slots) > 40  # the walk found ids in paths, query strings and bodies
    assert {slot.where for _, slot in slots} == {"path", "query", "body"}
    unbounded = [
        f"{route.method} {route.path} {slot.where} {slot.field}"
        for route, slot in slots
        if not route.refuses(slot, PAST_INT4) or route.refuses(slot, PAST_INT4 - 1)
    ]
    assert unbounded == []


def test_every_other_integer_a_route_takes_is_refused_past_bigint() -> None:
    slots = [(route, slot) for route in _routes() for slot in route.integers() if not slot.is_id]
    assert {slot.field for _, slot in slots} >= {"limit", "offset", "size_bytes"}
    unbounded = [
        f"{route.method} {route.path} {slot.where} {slot.field}"
        for route, slot in slots
        if not route.refuses(slot, PAST_INT8)
    ]
    assert unbounded == []
