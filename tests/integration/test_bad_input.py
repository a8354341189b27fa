"""Bad input on every write (invariant 9): a 4xx that names the field, and no trace in the
buffer or in main. Tables come from the routes themselves where they can (a new route is
covered without a new row); refusals that depend on what is recorded are a table of their own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ccat_api.app import create_app
from ccat_api.config import Settings
from ccat_api.db.models import Base
from ccat_api.devstack.stack import Stack
from ccat_api.schemas.inputs import INT32_MAX
from tests.integration.conftest import Tokens
from tests.routes import RouteInfo, api_routes, requirement
from tests.support import buffer_state, client, fetch, serve

EMPTY = {"stream": 0, "overlay": 0, "dead": 0, "awaiting_replica": 0, "idempotency": 0}
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


async def main_row_counts(stack: Stack) -> dict[str, int]:
    tables = sorted(Base.metadata.tables)
    query = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables)
    return {r[0]: int(r[1]) for r in await fetch(stack.main_db.dsn(), query)}


def answer_of(r: httpx.Response) -> dict[str, Any]:
    if not r.headers.get("content-type", "").startswith("application/json"):
        return {}
    found = r.json()
    return found if isinstance(found, dict) else {}


def error_fields(r: httpx.Response) -> set[str]:
    answer = answer_of(r)
    return {answer.get("field") or ""} | {e["field"] for e in answer.get("errors", [])}


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


# --- critical writes refused for what is (or is not) recorded ------------------------------
# Start, finish and single files are refused in test_accept.py; these are the rest.

FILE = {"size_bytes": 1000, "checksum": "sha256:0011223344556677", "file_type": "fits",
        "instrument_module_id": 1}  # fmt: skip
UNKNOWN_LOCATION = 999_999
UNKNOWN_ROUTE = 999_999


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@dataclass
class Recorded:
    """What the refusals refer to, recorded through the site under test."""

    site: str
    unit: str
    other_unit: str
    other_units_file: str
    packed_file: str
    building: dict[str, Any]
    complete: str
    pending: str
    transferring: str
    failed: str
    deleted_copy: str
    on_replica: str


async def package_on_main(stack: Stack, name: str) -> str:
    """A package recorded on main and replicated, as if written long ago."""
    unit, package = uuid.uuid4(), uuid.uuid4()
    stack.main_db.psql(
        "INSERT INTO executed_obs_units (id, obs_unit_id, site_id, status, start_time,"
        " created_by) VALUES"
        f" ('{unit}', 1, 1, 'success', now(), 'test');"
        "INSERT INTO raw_data_packages (id, name, executed_obs_unit_id, instrument_module_id,"
        f" status) VALUES ('{package}', '{name}', '{unit}', 1, 'complete')",
        user="ccat",
    )
    stack.wait_replica_caught_up()
    return str(package)


async def record(http: httpx.AsyncClient, stack: Stack, site: str) -> Recorded:
    async def start() -> str:
        answer = await ok(
            await http.post("/executed_obs_units/start", json={"obs_unit_id": 1}), 201
        )
        return str(answer["id"])

    async def package(name: str, unit: str) -> tuple[str, list[str]]:
        files = [{**FILE, "name": f"f{i}", "relative_path": f"{name}/f{i}.fits"} for i in range(3)]
        body = {"name": name, "executed_obs_unit_id": unit, "instrument_module_id": 1,
                "files": files}  # fmt: skip
        answer = await ok(await http.post("/raw_data_package", json=body), 201)
        return answer["id"], answer["ids"][1:]

    async def transfer(package_id: str, route_id: int, *moves: dict[str, Any]) -> str:
        body = {"raw_data_package_id": package_id, "route_id": route_id}
        moved = str((await ok(await http.post("/api/transfer/transfers", json=body), 201))["id"])
        for move in moves:
            await ok(await http.put(f"/api/transfer/transfers/{moved}", json=move))
        return moved

    unit, other_unit = await start(), await start()
    other_files = await ok(
        await http.post(
            "/raw_data_files",
            json={**FILE, "name": "o", "relative_path": f"{site}/other/o.fits",
                  "executed_obs_unit_id": other_unit},
        ),
        201,
    )  # fmt: skip
    building, packed = await package(f"building-{site}", unit)
    complete, _ = await package(f"complete-{site}", unit)
    await ok(await http.put(f"/raw_data_package/{complete}/finalize", json={}))
    copy = await ok(
        await http.post(
            "/api/transfer/copies",
            json={"raw_data_package_id": complete, "data_location_id": 2, "path": f"/b/{site}"},
        ),
        201,
    )
    await ok(await http.put(f"/api/transfer/copies/{copy['id']}", json={"status": "deleted"}))
    return Recorded(
        site=site,
        unit=unit,
        other_unit=other_unit,
        other_units_file=other_files["id"],
        packed_file=packed[0],
        building={"id": building, "name": f"building-{site}"},
        complete=complete,
        pending=await transfer(complete, 1),
        transferring=await transfer(complete, 3, {"status": "transferring"}),
        failed=await transfer(complete, 2, {"status": "failed", "error": "disk full"}),
        deleted_copy=copy["id"],
        on_replica=await package_on_main(stack, f"on-main-{site}"),
    )


def new_package(r: Recorded, **changes: Any) -> dict[str, Any]:
    return {"name": f"new-{r.site}", "executed_obs_unit_id": r.unit, "instrument_module_id": 1,
            **changes}  # fmt: skip


@dataclass(frozen=True)
class Refusal:
    case: str
    method: str
    path: Callable[[Recorded], str]
    body: Callable[[Recorded], Any]
    status: int
    field: str | None


REFUSALS = [
    Refusal("package with an unknown file", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, raw_data_file_ids=[str(uuid.uuid4())]),
            422, "raw_data_file_ids[0]"),
    Refusal("package with another unit's file", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, raw_data_file_ids=[r.other_units_file]),
            422, "raw_data_file_ids[0]"),
    Refusal("package with an already packed file", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, raw_data_file_ids=[r.packed_file]),
            409, "raw_data_file_ids[0]"),
    Refusal("package named like a buffered one", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, name=r.building["name"]), 409, "name"),
    Refusal("package named like one on the replica", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, name=f"on-main-{r.site}"), 409, "name"),
    Refusal("package of an unknown unit", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, executed_obs_unit_id=str(uuid.uuid4())),
            422, "executed_obs_unit_id"),
    Refusal("package with a new file of another module", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, files=[{**FILE, "name": "m2", "instrument_module_id": 2,
                                             "relative_path": f"{r.site}/m2.fits"}]),
            422, "files[0].instrument_module_id"),
    Refusal("file into a package of another module", "POST", lambda r: "/raw_data_files",
            lambda r: {**FILE, "name": "m2", "relative_path": f"{r.site}/m2.fits",
                       "instrument_module_id": 2, "executed_obs_unit_id": r.unit,
                       "raw_data_package_id": r.building["id"]},
            422, "raw_data_package_id"),
    Refusal("package of an unknown module", "POST", lambda r: "/raw_data_package",
            lambda r: new_package(r, instrument_module_id=INT32_MAX), 422, "instrument_module_id"),
    Refusal("finalize an unknown package", "PUT",
            lambda r: f"/raw_data_package/{uuid.uuid4()}/finalize", lambda r: {}, 404, None),
    Refusal("finalize a finalized package", "PUT",
            lambda r: f"/raw_data_package/{r.complete}/finalize", lambda r: {}, 409, "status"),
    Refusal("transfer of an unknown package", "POST", lambda r: "/api/transfer/transfers",
            lambda r: {"raw_data_package_id": str(uuid.uuid4()), "route_id": 1},
            422, "raw_data_package_id"),
    Refusal("transfer of a building package", "POST", lambda r: "/api/transfer/transfers",
            lambda r: {"raw_data_package_id": r.building["id"], "route_id": 1},
            409, "raw_data_package_id"),
    Refusal("transfer along an unknown route", "POST", lambda r: "/api/transfer/transfers",
            lambda r: {"raw_data_package_id": r.complete, "route_id": UNKNOWN_ROUTE},
            422, "route_id"),
    Refusal("progress past the package's size", "PUT",
            lambda r: f"/api/transfer/transfers/{r.transferring}",
            lambda r: {"status": "transferring", "bytes_transferred": 10**9},
            422, "bytes_transferred"),
    Refusal("a failed transfer moving on", "PUT", lambda r: f"/api/transfer/transfers/{r.failed}",
            lambda r: {"status": "transferring"}, 409, "status"),
    Refusal("a failure without its reason", "PUT",
            lambda r: f"/api/transfer/transfers/{r.pending}", lambda r: {"status": "failed"},
            422, "error"),
    Refusal("progress of an unknown transfer", "PUT",
            lambda r: f"/api/transfer/transfers/{uuid.uuid4()}",
            lambda r: {"status": "transferring"}, 404, None),
    Refusal("reset of a pending transfer", "POST",
            lambda r: f"/api/transfer/transfers/{r.pending}/reset", lambda r: None, 409, "status"),
    Refusal("log of an unknown transfer", "POST",
            lambda r: f"/api/transfer/transfers/{uuid.uuid4()}/logs",
            lambda r: {"message": "bbcp started"}, 404, None),
    Refusal("copy of an unknown package", "POST", lambda r: "/api/transfer/copies",
            lambda r: {"raw_data_package_id": str(uuid.uuid4()), "data_location_id": 2,
                       "path": "/b/x"},
            422, "raw_data_package_id"),
    Refusal("copy at an unknown location", "POST", lambda r: "/api/transfer/copies",
            lambda r: {"raw_data_package_id": r.complete, "data_location_id": UNKNOWN_LOCATION,
                       "path": "/b/x"},
            422, "data_location_id"),
    Refusal("update of an unknown copy", "PUT", lambda r: f"/api/transfer/copies/{uuid.uuid4()}",
            lambda r: {"status": "verified"}, 404, None),
    Refusal("a deleted copy present again", "PUT",
            lambda r: f"/api/transfer/copies/{r.deleted_copy}", lambda r: {"status": "present"},
            409, "status"),
]  # fmt: skip


@pytest.mark.parametrize("site_type", ["secondary", "main"])
async def test_critical_writes_refused_for_what_is_recorded_name_the_field_and_leave_no_trace(
    stack: Stack,
    tokens: Tokens,
    secondary_settings: Settings,
    main_settings: Settings,
    site_type: str,
) -> None:
    """At a secondary site nothing is buffered (stream, overlay, idempotency answers); at main
    nothing is written."""
    settings = secondary_settings if site_type == "secondary" else main_settings
    # Names and paths of this test's own records, wherever they are written.
    site = secondary_settings.site_name

    async def trace() -> dict[str, int]:
        if settings.is_secondary:
            return await buffer_state(settings.redis_url, settings.site_name)
        return await main_row_counts(stack)

    failures = []
    async with serve(settings) as url, client(url, tokens.admin) as http:
        recorded = await record(http, stack, site)
        before = await trace()
        for i, refusal in enumerate(REFUSALS):
            r = await http.request(
                refusal.method,
                refusal.path(recorded),
                json=refusal.body(recorded),
                # A refusal must not be remembered as the answer to this key either.
                headers={"Idempotency-Key": f"refused-{i}"},
            )
            answer = answer_of(r)
            got = (r.status_code, answer.get("field"))
            if got != (refusal.status, refusal.field) or (
                refusal.field and refusal.field not in answer.get("detail", "")
            ):
                failures.append(f"{refusal.case}: {got} {r.text[:200]}")
            after = await trace()
            if after != before:
                failures.append(f"{refusal.case}: left a trace: {before} -> {after}")
                before = after
    assert not failures, "\n".join(failures)


# --- hostile but valid JSON, lax forms and the framework's own refusals, at both sites ------


@pytest.fixture(params=["secondary", "main"])
def any_site(
    request: pytest.FixtureRequest, secondary_settings: Settings, main_settings: Settings
) -> Settings:
    return secondary_settings if request.param == "secondary" else main_settings


LONE = b'"\\ud800"'  # JSON text may spell it; no UTF-8 encoder will take the string it makes


async def test_a_lone_surrogate_anywhere_in_a_body_is_a_422_naming_where_and_writes_nothing(
    stack: Stack, tokens: Tokens, any_site: Settings
) -> None:
    before = await main_row_counts(stack)
    cases = [
        ("POST", "/executed_obs_units/start", b'{"obs_unit_id": 1, "conditions": {"seeing": ' + LONE + b"}}", "conditions.seeing"),
        ("POST", "/executed_obs_units/start", b'{"obs_unit_id": 1, "conditions": {"a": [1, ' + LONE + b"]}}", "conditions.a[1]"),
        ("POST", "/executed_obs_units/start", b'{"obs_unit_id": 1, "conditions": {' + LONE + b": 1}}", "conditions.\\ud800"),
        ("PUT", "/users/me/preferences", b'{"theme": ' + LONE + b"}", "theme"),
        ("POST", "/api/transfer/transfers", b'{"raw_data_package_id": ' + LONE + b', "route_id": 1}', "raw_data_package_id"),
    ]  # fmt: skip
    failures = []
    async with serve(any_site) as url, client(url, tokens.admin) as http:
        for method, path, body, field in cases:
            r = await http.request(
                method, path, content=body, headers={"Content-Type": "application/json"}
            )
            answer = answer_of(r)
            if (
                r.status_code != 422
                or answer.get("field") != field
                or "surrogate" not in answer.get("detail", "")
            ):
                failures.append(f"{method} {path} {field} -> {r.status_code} {r.text[:200]}")
    assert failures == []
    if any_site.is_secondary:
        assert await buffer_state(any_site.redis_url, any_site.site_name) == EMPTY
    assert await main_row_counts(stack) == before


async def test_any_json_a_free_form_field_takes_reads_back_as_it_was_sent(
    tokens: Tokens, any_site: Settings
) -> None:
    conditions = {
        "emoji": "\U0001f600, sent as a surrogate pair escape",
        "escapes": 'tab\tquote"backslash\\ and \u2028',
        # jsonb keeps a number's value, not its spelling (1e20 comes back as
        # 100000000000000000000): the same JSON number, and here the same Python value.
        "numbers": [0, -1, 2**63 - 1, -(2**63), 1.5e-300, 1e20, 0.1, -0.0],
        "nested": {"a": {"b": {"c": [None, True, False, {}]}}},
        "": "an empty key",
    }
    async with serve(any_site) as url, client(url, tokens.operator) as http:
        # ensure_ascii spells every non-ASCII character as an escape, and characters beyond
        # the BMP as surrogate pairs: the escapes a JSON parser must join.
        r = await http.post(
            "/executed_obs_units/start",
            content=json.dumps({"obs_unit_id": 1, "conditions": conditions}, ensure_ascii=True),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 201, r.text
        read = await http.get(f"/executed_obs_units/{r.json()['id']}")
        assert read.status_code == 200, read.text
        assert read.json()["conditions"] == conditions


async def test_lax_forms_of_ids_dates_and_booleans_are_refused_naming_the_field(
    stack: Stack, tokens: Tokens, any_site: Settings
) -> None:
    before = await main_row_counts(stack)
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", "/executed_obs_units/start", {"obs_unit_id": "1"}, "obs_unit_id"),
        ("POST", "/executed_obs_units/start", {"obs_unit_id": True}, "obs_unit_id"),
        ("POST", "/executed_obs_units/start", {"obs_unit_id": 1.0}, "obs_unit_id"),
        ("POST", "/executed_obs_units/start", {"obs_unit_id": 1, "start_time": 0}, "start_time"),
        ("GET", "/sources/1.0", None, "item_id"),
        ("PATCH", "/sources/1.0", {"description": "x"}, "item_id"),
        ("DELETE", "/sources/1.0", None, "item_id"),
        ("GET", "/sources/1/visibility?date=0", None, "date"),
        ("GET", "/obs_units?limit=1.0", None, "limit"),
        ("PATCH", "/users/1", {"active": 0}, "active"),
    ]
    failures = []
    async with serve(any_site) as url, client(url, tokens.admin) as http:
        for method, path, body, field in cases:
            r = await http.request(method, path, json=body)
            if r.status_code != 422 or field not in error_fields(r):
                failures.append(f"{method} {path} {body} -> {r.status_code} {r.text[:200]}")
        # The canonical forms still work: the refusals are about form, not about the values.
        assert (await http.get("/sources/1")).status_code == 200
        assert (await http.get("/sources/1/visibility?date=2026-11-22")).status_code == 200
    assert failures == []
    if any_site.is_secondary:
        assert await buffer_state(any_site.redis_url, any_site.site_name) == EMPTY
    assert await main_row_counts(stack) == before


async def test_the_frameworks_own_refusals_come_in_the_one_error_shape(
    tokens: Tokens, any_site: Settings
) -> None:
    shape = {"detail", "field", "code"}
    async with serve(any_site) as url, client(url, tokens.admin) as http:
        for body in (b"{not json", b'{"obs_unit_id": "\xff"}', b"[" * 100_000):
            r = await http.post(
                "/executed_obs_units/start",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert r.status_code == 422, r.text
            assert r.json()["code"] == "invalid_json"
            assert r.json()["field"] == "body"
            assert set(r.json()) == shape
        # A path served by one route per method: Allow names them all, whichever matched.
        r = await http.put("/api/transfer/transfers")
        assert r.status_code == 405
        assert r.headers["allow"] == "GET, POST"
        assert set(r.json()) == shape
        assert r.json()["code"] == "method_not_allowed"
        r = await http.delete("/users/me/preferences")
        assert r.headers["allow"] == "GET, PUT"
        # A literal path is its own resource, though a sibling's template matches it too.
        r = await http.get("/executed_obs_units/start")
        assert r.status_code == 405
        assert r.headers["allow"] == "POST"
        r = await http.get("/no/such/route")
        assert r.status_code == 404
        assert set(r.json()) == shape
        assert r.json()["code"] == "not_found"
