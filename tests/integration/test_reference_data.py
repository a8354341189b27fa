"""Reference data routes, table-driven: every list answers with the documented filters, order
and pages and an exact total, at main and (from its replica) at a secondary site; every
record can be read by id, an unknown id is a 404; the writes that exist go to main from
either site."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import all_pages, client, fetch, fetchval, ok, serve


@dataclass(frozen=True)
class Listed:
    path: str
    table: str
    orders: tuple[str, ...]
    # Each filter must select some rows of the seeded data but not all of them.
    filters: tuple[dict[str, Any], ...] = ()
    text_columns: frozenset[str] = field(default_factory=lambda: frozenset({"name", "short_name"}))


RESOURCES = (
    Listed("/sites", "sites", ("id",)),
    Listed("/observatories", "observatories", ("id",)),
    Listed("/telescopes", "telescopes", ("id",)),
    Listed(
        "/instruments", "instruments", ("id", "name"),
        ({"q": "cam"}, {"q": "CHAI", "site_id": 1}),
    ),
    Listed(
        "/instrument_modules", "instrument_modules", ("id", "name"), ({"instrument_id": 2},)
    ),
    Listed(
        "/instrument_module_configurations", "instrument_module_configurations",
        ("id", "name"), ({"instrument_module_id": 1},),
    ),
    Listed("/observation_modes", "observation_modes", ("id",)),
    Listed(
        "/observation_configurations", "observation_configurations", ("id", "name"),
        ({"observation_mode_id": 3},),
    ),
    Listed(
        "/obs_units", "obs_units", ("id", "name", "priority"),
        (
            {"observing_program_id": 3}, {"sub_observing_program_id": 2}, {"instrument_id": 2},
            {"source_id": 1}, {"q": "TILE-00"}, {"observing_program_id": 1, "q": "raster"},
        ),
    ),
    Listed(
        "/observing_programs", "observing_programs", ("id", "short_name", "name"),
        ({"q": "survey"},),
    ),
    Listed(
        "/sub_observing_programs", "sub_observing_programs", ("id", "short_name", "name"),
        ({"observing_program_id": 2}, {"q": "wide"}),
    ),
    Listed(
        "/api/transfer/locations", "data_locations", ("id", "name"),
        ({"role": "long_term_archive"}, {"site_id": 2, "location_type": "s3"}),
    ),
    Listed(
        "/api/transfer/routes", "data_transfer_routes", ("id", "name"),
        ({"route_type": "direct"}, {"destination_location_id": 5}),
    ),
)  # fmt: skip


async def main_ids(
    conn: asyncpg.Connection, spec: Listed, where: dict[str, Any], order: str
) -> list[int]:
    """The ids main holds for a list query, in the documented order: the test's oracle."""
    clauses, args = [], []
    for name, value in where.items():
        args.append(f"%{value}%" if name == "q" else value)
        clauses.append(f"name ILIKE ${len(args)}" if name == "q" else f"{name} = ${len(args)}")
    column = order.lstrip("-")
    collate = ' COLLATE "C"' if column in spec.text_columns else ""
    direction = "DESC" if order.startswith("-") else "ASC"
    rows = await conn.fetch(
        f"SELECT id FROM {spec.table} WHERE {' AND '.join(clauses) or 'TRUE'}"
        f" ORDER BY {column}{collate} {direction} NULLS LAST, id",
        *args,
    )
    return [r["id"] for r in rows]


async def expected_lists(
    conn: asyncpg.Connection, spec: Listed
) -> dict[tuple[str, str], list[int]]:
    """(filter as a string, order) -> ids, for every query ``check_lists`` makes."""
    found = {}
    for where in ({}, *spec.filters):
        found[str(where), spec.orders[0]] = await main_ids(conn, spec, where, spec.orders[0])
    for column in spec.orders:
        for order in (column, f"-{column}"):
            found["{}", order] = await main_ids(conn, spec, {}, order)
    return found


async def check_lists(
    http: httpx.AsyncClient, spec: Listed, expected: dict[tuple[str, str], list[int]]
) -> None:
    everything = expected["{}", spec.orders[0]]
    items, totals = await all_pages(http, spec.path, {}, max(2, len(everything) // 4))
    assert [i["id"] for i in items] == everything, spec.path
    assert totals == {len(everything)}, spec.path
    for where in spec.filters:
        want = expected[str(where), spec.orders[0]]
        assert 0 < len(want) < len(everything), (spec.path, where)
        page = ok(await http.get(spec.path, params={**where, "limit": 1000}))
        assert [i["id"] for i in page["items"]] == want, (spec.path, where)
        assert page["total"] == len(want), (spec.path, where)
    for column in spec.orders:
        for order in (column, f"-{column}"):
            page = ok(await http.get(spec.path, params={"order": order, "limit": 1000}))
            assert [i["id"] for i in page["items"]] == expected["{}", order], (spec.path, order)
    # A record by id is the record the list shows (the first and the last of each list).
    for item in (items[0], items[-1]):
        assert ok(await http.get(f"{spec.path}/{item['id']}")) == item, spec.path
    missing = await http.get(f"{spec.path}/999999")
    assert missing.status_code == 404, (spec.path, missing.text)
    assert "999999" in missing.json()["detail"]
    bad_order = await http.get(spec.path, params={"order": "colour"})
    assert bad_order.status_code == 422, (spec.path, bad_order.text)
    assert bad_order.json()["field"] == "order"


async def test_reference_lists_filter_order_and_page_with_exact_totals_at_both_sites(
    stack: Stack, tokens: Tokens, main_settings: Settings, secondary_settings: Settings
) -> None:
    stack.wait_replica_caught_up()
    conn = await asyncpg.connect(stack.main_db.dsn(), timeout=10)
    try:
        expected = {spec.path: await expected_lists(conn, spec) for spec in RESOURCES}
    finally:
        await conn.close()
    async with (
        serve(main_settings) as main_url,
        serve(secondary_settings) as site_url,
        client(main_url, tokens.viewer) as at_main,
        client(site_url, tokens.viewer) as at_site,
    ):
        for spec in RESOURCES:
            for http in (at_main, at_site):
                await check_lists(http, spec, expected[spec.path])


def creations(tag: str) -> list[tuple[str, dict[str, Any], str]]:
    """(path, a valid body, the reference field to break) for every reference write."""
    return [
        (
            "/instrument_module_configurations",
            {"instrument_module_id": 2, "name": f"cfg-{tag}", "parameters": {"bias": "high"}},
            "instrument_module_id",
        ),
        (
            "/observation_configurations",
            {"name": f"oc-{tag}", "observation_mode_id": 2,
             "instrument_module_configuration_id": 1, "parameters": {"speed_deg_s": 0.5}},
            "observation_mode_id",
        ),
        (
            "/obs_units",
            {"name": f"ou-{tag}", "observing_program_id": 2, "sub_observing_program_id": 2,
             "instrument_id": 1, "source_id": 5, "priority": 2.5},
            "source_id",
        ),
    ]  # fmt: skip


async def test_reference_writes_go_to_main_from_either_site_and_read_back(
    stack: Stack, tokens: Tokens, main_settings: Settings, secondary_settings: Settings
) -> None:
    dsn = stack.main_db.dsn()
    async with (
        serve(main_settings) as main_url,
        serve(secondary_settings) as site_url,
        client(main_url, tokens.operator) as at_main,
        client(site_url, tokens.operator) as at_site,
    ):
        for where, http in (("main", at_main), ("site", at_site)):
            for path, body, reference in creations(f"{where}-{uuid.uuid4().hex[:8]}"):
                table = path.lstrip("/")
                before = await fetchval(dsn, f"SELECT count(*) FROM {table}")
                broken = await http.post(path, json={**body, reference: 999_999})
                assert broken.status_code == 422, (where, path, broken.text)
                assert broken.json()["field"] == reference, (where, path, broken.text)
                assert await fetchval(dsn, f"SELECT count(*) FROM {table}") == before
                created = ok(await http.post(path, json=body), 201)
                assert {k: created[k] for k in body} == body, (where, path)
                on_main = await fetch(dsn, f"SELECT * FROM {table} WHERE id = $1", created["id"])
                assert len(on_main) == 1, (where, path)
                assert {k: on_main[0][k] for k in body if k != "parameters"} == {
                    k: v for k, v in body.items() if k != "parameters"
                }
                stack.wait_replica_caught_up()
                for reader in (at_main, at_site):
                    assert ok(await reader.get(f"{path}/{created['id']}")) == created
                    parent = next(k for k in body if k.endswith("_id"))
                    listed = ok(
                        await reader.get(path, params={parent: body[parent], "limit": 1000})
                    )
                    assert [i for i in listed["items"] if i["id"] == created["id"]] == [created]

            unit = ok(await http.get("/obs_units", params={"q": f"ou-{where}-", "limit": 1000}))[
                "items"
            ][-1]
            changed = ok(
                await http.patch(
                    f"/obs_units/{unit['id']}", json={"priority": 7.5, "description": "moved up"}
                )
            )
            assert changed == {**unit, "priority": 7.5, "description": "moved up"}
            assert (
                await fetchval(dsn, "SELECT priority FROM obs_units WHERE id = $1", unit["id"])
                == 7.5
            )
            stack.wait_replica_caught_up()
            assert ok(await http.get(f"/obs_units/{unit['id']}")) == changed
            missing = await http.patch("/obs_units/999999", json={"priority": 1.0})
            assert missing.status_code == 404, missing.text
            broken = await http.patch(f"/obs_units/{unit['id']}", json={"source_id": 999_999})
            assert broken.status_code == 422, broken.text
            assert broken.json()["field"] == "source_id"

        async with client(site_url, tokens.viewer) as viewer:
            for path, body, _ in creations("viewer"):
                refused = await viewer.post(path, json=body)
                assert refused.status_code == 403, (path, refused.text)
                assert "manage:catalog" in refused.json()["detail"]
