"""Every value a route takes is read strictly, wherever it sits: the walk covers every route's
path, query string and body (nested models included), so a new route or field written with a
lax type fails here. Each kind is also shown to accept its one canonical form, so a type that
refuses everything cannot pass."""

from __future__ import annotations

import functools
import uuid
from datetime import date, datetime
from typing import Any

import pytest

from ccat_api.app import create_app
from ccat_api.config import Settings
from tests.routes import RouteInfo, Slot, api_routes

UUID_TEXT = "0190a6c4-0000-7000-8000-000000000001"


@functools.cache
def _routes() -> list[RouteInfo]:
    return api_routes(create_app(Settings(development=True)))


def _slots(kind: type) -> list[tuple[RouteInfo, Slot]]:
    return [(route, slot) for route in _routes() for slot in route.slots(kind)]


# (kind, where) -> (the canonical form, lax forms that must be refused)
CASES: dict[tuple[type, str], tuple[Any, list[Any]]] = {
    (int, "body"): (1, ["1", True, 1.0]),
    (int, "path"): ("1", ["1.0", "+1", " 1", "1e0", "true", "0x1"]),
    (int, "query"): ("1", ["1.0", "+1", " 1", "1e0", "true", "0x1"]),
    (bool, "body"): (True, [0, 1, "true", "yes"]),
    (float, "body"): (1.5, ["1.5", True]),
    (datetime, "body"): ("2026-11-22T04:30:00Z", [0, "0", "1700000000", 1.5]),
    (date, "query"): ("2026-11-22", ["0", "20261122", "1700000000"]),
    (uuid.UUID, "body"): (UUID_TEXT, [UUID_TEXT.replace("-", ""), f"urn:uuid:{UUID_TEXT}", 1]),
    (uuid.UUID, "path"): (UUID_TEXT, [UUID_TEXT.replace("-", ""), f"{{{UUID_TEXT}}}"]),
    (uuid.UUID, "query"): (UUID_TEXT, [UUID_TEXT.replace("-", ""), f"urn:uuid:{UUID_TEXT}"]),
}


@pytest.mark.parametrize(
    ("kind", "where"), list(CASES), ids=[f"{kind.__name__}-{where}" for kind, where in CASES]
)
def test_every_value_of_a_kind_refuses_lax_forms_and_takes_the_canonical_one(
    kind: type, where: str
) -> None:
    canonical, lax = CASES[(kind, where)]
    slots = [(route, slot) for route, slot in _slots(kind) if slot.where == where]
    assert slots, f"no route takes a {kind.__name__} in its {where}: the walk is broken"
    failures = []
    for route, slot in slots:
        if route.refuses(slot, canonical):
            failures.append(f"{route.method} {route.path} {slot.field} refuses {canonical!r}")
        failures += [
            f"{route.method} {route.path} {slot.field} takes {value!r}"
            for value in lax
            if not route.refuses(slot, value)
        ]
    assert failures == []


def test_the_walk_reaches_the_fields_the_issue_names() -> None:
    found = {
        (route.method, route.path, slot.where, slot.field)
        for kind in (int, bool, date, datetime, uuid.UUID)
        for route, slot in _slots(kind)
    }
    assert {
        ("POST", "/executed_obs_units/start", "body", "obs_unit_id"),
        ("POST", "/executed_obs_units/start", "body", "start_time"),
        ("GET", "/sources/{item_id}", "path", "item_id"),
        ("PATCH", "/sources/{item_id}", "path", "item_id"),
        ("DELETE", "/sources/{item_id}", "path", "item_id"),
        ("GET", "/sources/{source_id}/visibility", "query", "date"),
        ("PATCH", "/users/{user_id}", "body", "active"),
        ("POST", "/raw_data_files/bulk", "body", "files[0].executed_obs_unit_id"),
    } <= found
