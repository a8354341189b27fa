"""Bad input on every route (invariant 9), from tables the routes themselves give (a new route
is covered without a new row): malformed bodies, integer ids out of range, malformed and
unknown ids of writes without a body, and the empty PATCH. A 4xx that names the field, and
no trace in the buffer or in main."""

from __future__ import annotations

import uuid
from typing import Any

from ccat_api.app import create_app
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.schemas.inputs import INT32_MAX
from tests.integration.bad_input import EMPTY, answer_of, error_fields, main_row_counts
from tests.integration.conftest import Tokens
from tests.routes import RouteInfo, api_routes, requirement
from tests.support import buffer_state, client, serve

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Above PostgreSQL's integer (what every integer key is), zero and negative.
OUT_OF_RANGE_IDS = (3_000_000_000, 0, -1)


def authorized_routes(settings: Settings) -> list[RouteInfo]:
    found = []
    for route in api_routes(create_app(settings)):
        needs = requirement(route.dependant)
        if needs and not needs.public:
            found.append(route)
    return found


def write_routes(settings: Settings) -> list[RouteInfo]:
    return [
        r
        for r in authorized_routes(settings)
        if r.method in {"POST", "PUT", "PATCH"} and r.dependant.body_params
    ]


def _takes_any_object(route: RouteInfo) -> bool:
    (body,) = route.dependant.body_params
    return getattr(body.field_info.annotation, "__origin__", None) is dict or "dict" in str(
        body.field_info.annotation
    )


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
                answer = answer_of(r)
                if (
                    r.status_code != 422
                    or not answer.get("field")
                    or answer["field"] not in answer.get("detail", "")
                ):
                    failures.append(
                        f"{route.method} {route.path} [{case}] -> {r.status_code} {r.text[:150]}"
                    )
    assert not failures, "\n".join(failures)
    assert await buffer_state(secondary_settings.redis_url, secondary_settings.site_name) == EMPTY
    assert await main_row_counts(stack) == before


# --- integer ids out of range, wherever a route takes one ---------------------------------


async def test_out_of_range_integer_ids_are_refused_naming_the_field_on_every_route(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    """Before ids were bounded, 3000000000 reached asyncpg, which refused to encode it: a 503
    with Retry-After, so a client would retry bad input forever."""
    slots = [(route, slot) for route in authorized_routes(secondary_settings)
             for slot in route.integer_ids()]  # fmt: skip
    covered = {(route.method, route.path, slot.field) for route, slot in slots}
    assert {
        ("POST", "/executed_obs_units/start", "obs_unit_id"),
        ("POST", "/raw_data_files/bulk", "files[0].instrument_module_id"),
        ("POST", "/api/transfer/transfers", "route_id"),
        ("POST", "/api/transfer/copies", "data_location_id"),
        ("POST", "/api/staging/jobs", "destination_location_id"),
        ("PATCH", "/observing_programs/{item_id}", "item_id"),
        ("DELETE", "/sources/{item_id}", "item_id"),
        ("DELETE", "/tokens/{token_id}", "token_id"),
        ("PATCH", "/users/{user_id}", "user_id"),
        ("GET", "/obs_units", "source_id"),
        ("GET", "/api/transfer/transfers", "route_id"),
        ("GET", "/sources/{source_id}/visibility", "site_id"),
        ("GET", "/admin/tokens", "user_id"),
    } <= covered
    before = await main_row_counts(stack)
    failures = []
    async with serve(secondary_settings) as url, client(url, tokens.admin) as http:
        for route, slot in slots:
            for value in OUT_OF_RANGE_IDS:
                body = slot.body(value) if slot.where == "body" else None
                if body is None and route.dependant.body_params:
                    body = {}
                r = await http.request(
                    route.method,
                    route.sample_path(**({slot.field: value} if slot.where == "path" else {})),
                    params={slot.field: value} if slot.where == "query" else None,
                    json=body,
                )
                if r.status_code != 422 or slot.field not in error_fields(r):
                    failures.append(
                        f"{route.method} {route.path} {slot.where} {slot.field}={value}"
                        f" -> {r.status_code} {r.text[:200]}"
                    )
    assert not failures, "\n".join(failures)
    assert await buffer_state(secondary_settings.redis_url, secondary_settings.site_name) == EMPTY
    assert await main_row_counts(stack) == before


# --- writes without a body: only their path can be wrong ----------------------------------


def bodyless_writes(settings: Settings) -> list[RouteInfo]:
    return [
        r
        for r in authorized_routes(settings)
        if r.method in WRITE_METHODS and not r.dependant.body_params and r.dependant.path_params
    ]


def malformed_values(route: RouteInfo, name: str) -> list[Any]:
    (param,) = [p for p in route.dependant.path_params if p.name == name]
    if param.field_info.annotation is uuid.UUID:
        return ["not-a-uuid", "3000000000", "1", f"{uuid.uuid4()}x"]
    return ["not-an-int", "1.5", *OUT_OF_RANGE_IDS]


def unknown_value(route: RouteInfo, name: str) -> Any:
    (param,) = [p for p in route.dependant.path_params if p.name == name]
    # The largest id an integer key can hold: valid, and certainly not recorded.
    return uuid.uuid4() if param.field_info.annotation is uuid.UUID else INT32_MAX


async def test_writes_without_a_body_refuse_malformed_ids_and_404_unknown_ones(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    routes = bodyless_writes(secondary_settings)
    assert {(r.method, r.path) for r in routes} >= {
        ("POST", "/api/transfer/transfers/{transfer_id}/reset"),
        ("POST", "/transactions/{tx_id}/retry"),
        ("POST", "/transactions/{tx_id}/discard"),
        ("DELETE", "/observing_programs/{item_id}"),
        ("DELETE", "/sub_observing_programs/{item_id}"),
        ("DELETE", "/sources/{item_id}"),
        ("DELETE", "/tokens/{token_id}"),
    }
    before = await main_row_counts(stack)
    failures = []
    async with serve(secondary_settings) as url, client(url, tokens.admin) as http:
        for route in routes:
            for param in route.dependant.path_params:
                for value in malformed_values(route, param.name):
                    r = await http.request(route.method, route.sample_path(**{param.name: value}))
                    answer = answer_of(r)
                    if (
                        r.status_code != 422
                        or answer.get("field") != param.name
                        or param.name not in answer.get("detail", "")
                    ):
                        failures.append(
                            f"{route.method} {route.path} {param.name}={value!r}"
                            f" -> {r.status_code} {r.text[:200]}"
                        )
                unknown = unknown_value(route, param.name)
                r = await http.request(route.method, route.sample_path(**{param.name: unknown}))
                if r.status_code != 404:
                    failures.append(
                        f"{route.method} {route.path} unknown {param.name}"
                        f" -> {r.status_code} {r.text[:200]}"
                    )
    assert not failures, "\n".join(failures)
    assert await buffer_state(secondary_settings.redis_url, secondary_settings.site_name) == EMPTY
    assert await main_row_counts(stack) == before


# --- an empty PATCH changes nothing --------------------------------------------------------


def _collection_path(route: RouteInfo) -> str:
    return route.path.rsplit("/{", 1)[0]


def _first_record(listing: Any) -> dict[str, Any]:
    items = listing["items"] if isinstance(listing, dict) else listing
    assert items, "nothing recorded to patch"
    first: dict[str, Any] = items[0]
    return first


async def test_empty_patch_answers_the_record_unchanged_or_404_on_every_patch_route(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    """A merge patch of ``{}`` is the identity (RFC 7396): it used to compile to
    ``UPDATE ... SET WHERE`` and fail with a 500. A route whose body requires a field (a state
    move) refuses the empty body naming that field instead."""
    routes = [r for r in authorized_routes(secondary_settings) if r.method == "PATCH"]
    before = await main_row_counts(stack)
    failures, merge_patches = [], set()
    async with serve(secondary_settings) as url, client(url, tokens.admin) as http:
        for route in routes:
            (param,) = route.dependant.path_params
            assert route.body_model is not None, route.path
            fields = route.body_model.model_fields
            required = [name for name, f in fields.items() if f.is_required()]
            unknown = await http.patch(
                route.sample_path(**{param.name: unknown_value(route, param.name)}), json={}
            )
            got = (unknown.status_code, answer_of(unknown).get("field"))
            if got != ((422, required[0]) if required else (404, None)):
                failures.append(f"PATCH {route.path} unknown id {{}} -> {got} {unknown.text[:200]}")
            if required:
                continue
            merge_patches.add(route.path)
            listing = await http.get(_collection_path(route))
            assert listing.status_code == 200, listing.text
            current = _first_record(listing.json())
            r = await http.patch(route.sample_path(**{param.name: current["id"]}), json={})
            if r.status_code != 200 or r.json() != current:
                failures.append(f"PATCH {route.path} {{}} -> {r.status_code} {r.text[:300]}")
    assert merge_patches >= {
        "/observing_programs/{item_id}",
        "/sub_observing_programs/{item_id}",
        "/obs_units/{item_id}",
        "/sources/{item_id}",
        "/api/transfer/locations/{item_id}",
        "/api/transfer/routes/{item_id}",
        "/users/{user_id}",
    }
    assert not failures, "\n".join(failures)
    assert await buffer_state(secondary_settings.redis_url, secondary_settings.site_name) == EMPTY
    assert await main_row_counts(stack) == before
