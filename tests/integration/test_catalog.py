"""Reference data through the gateway: written at main from either site, read with the same
list semantics everywhere, refused clearly when wrong, 503 while main is unreachable."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import pytest

from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import client, fetchval, serve


async def test_programs_are_written_at_main_from_the_secondary_site(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    short = f"p-{uuid.uuid4().hex[:8]}"
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        created = await http.post(
            "/observing_programs",
            json={"short_name": short, "name": "Test program", "pi_name": "X"},
        )
        assert created.status_code == 201, created.text
        program = created.json()
        assert (
            await fetchval(
                stack.main_db.dsn(),
                "SELECT name FROM observing_programs WHERE id = $1",
                program["id"],
            )
            == "Test program"
        )
        clash = await http.post("/observing_programs", json={"short_name": short, "name": "again"})
        assert clash.status_code == 409
        assert clash.json()["field"] == "short_name"
        orphan = await http.post(
            "/sub_observing_programs",
            json={"observing_program_id": 999999, "short_name": "x", "name": "x"},
        )
        assert orphan.status_code == 422
        assert orphan.json()["field"] == "observing_program_id"
        sub = await http.post(
            "/sub_observing_programs",
            json={"observing_program_id": program["id"], "short_name": "a", "name": "A"},
        )
        assert sub.status_code == 201, sub.text
        stack.wait_replica_caught_up()
        changed = await http.patch(f"/observing_programs/{program['id']}", json={"name": "Renamed"})
        assert changed.json()["name"] == "Renamed"
        stack.wait_replica_caught_up()
        assert (await http.get(f"/observing_programs/{program['id']}")).json()["name"] == "Renamed"
        referenced = await http.delete(f"/observing_programs/{program['id']}")
        assert referenced.status_code == 409
        assert (await http.delete(f"/sub_observing_programs/{sub.json()['id']}")).status_code == 204
        assert (await http.delete(f"/observing_programs/{program['id']}")).status_code == 204
        stack.wait_replica_caught_up()
        assert (await http.get(f"/observing_programs/{program['id']}")).status_code == 404
        async with client(url, tokens.viewer) as viewer:
            refused = await viewer.post(
                "/observing_programs", json={"short_name": "v", "name": "v"}
            )
            assert refused.status_code == 403
            assert "manage:catalog" in refused.json()["detail"]


async def test_non_buffered_writes_answer_503_with_retry_after_while_main_is_away(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    settings = secondary_settings.model_copy(update={"db_connect_timeout_s": 1.0})
    async with serve(settings) as url, client(url, tokens.operator, timeout_s=10) as http:
        stack.wan.down()
        started = time.monotonic()
        r = await http.post("/observing_programs", json={"short_name": "offline", "name": "x"})
        assert r.status_code == 503
        assert int(r.headers["Retry-After"]) > 0
        assert time.monotonic() - started < 8
        assert (await http.get("/observing_programs")).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source_type": "fixed", "ra_deg": 10.0}, "dec_deg"),
        ({"source_type": "fixed", "ra_deg": 400.0, "dec_deg": 0.0}, "ra_deg"),
        ({"source_type": "solar_system"}, "body"),
        ({"source_type": "solar_system", "body": "pluto"}, "body"),
        ({"source_type": "solar_system", "body": "mars", "ra_deg": 1.0}, "ra_deg"),
        ({"source_type": "constant_elevation", "elevation_deg": 45.0}, "azimuth_min_deg"),
        ({"source_type": "nebula"}, "source_type"),
    ],
)
async def test_a_source_must_have_what_its_type_needs(
    tokens: Tokens, main_settings: Settings, body: dict[str, object], field: str
) -> None:
    async with serve(main_settings) as url, client(url, tokens.operator) as http:
        r = await http.post("/sources", json={"name": f"bad-{uuid.uuid4().hex[:6]}", **body})
        assert r.status_code == 422, r.text
        assert field in r.json()["detail"]


async def test_source_search_filters_orders_and_pages_with_totals(
    tokens: Tokens, main_settings: Settings
) -> None:
    async with serve(main_settings) as url, client(url, tokens.viewer) as http:
        page = (
            await http.get("/sources", params={"q": "cosmos-t00", "order": "-name", "limit": 4})
        ).json()
        assert page["total"] == 10
        names = [s["name"] for s in page["items"]]
        assert names == sorted(names, reverse=True)
        rest = (
            await http.get(
                "/sources", params={"q": "cosmos-t00", "order": "-name", "limit": 4, "offset": 8}
            )
        ).json()
        assert len(rest["items"]) == 2
        solar = (await http.get("/sources", params={"source_type": "solar_system"})).json()
        assert {s["body"] for s in solar["items"]} >= {"mars", "moon", "jupiter"}
        bad_order = await http.get("/sources", params={"order": "colour"})
        assert bad_order.status_code == 422
        assert bad_order.json()["field"] == "order"
        assert (await http.get("/sources/999999")).status_code == 404


def _separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Vincenty's formula: independent of the SQL's spherical law of cosines."""
    l1, b1, l2, b2 = map(math.radians, (ra1, dec1, ra2, dec2))
    dl = l2 - l1
    num = math.hypot(
        math.cos(b2) * math.sin(dl),
        math.cos(b1) * math.sin(b2) - math.sin(b1) * math.cos(b2) * math.cos(dl),
    )
    den = math.sin(b1) * math.sin(b2) + math.cos(b1) * math.cos(b2) * math.cos(dl)
    return math.degrees(math.atan2(num, den))


async def test_cone_search_pages_fixed_sources_within_the_radius_nearest_first_with_a_total(
    tokens: Tokens, main_settings: Settings
) -> None:
    ra, dec, radius = 150.0, 2.0, 3.0
    cone = {"ra_deg": ra, "dec_deg": dec, "radius_deg": radius}
    async with serve(main_settings) as url, client(url, tokens.viewer) as http:
        pages: list[dict[str, Any]] = []
        offset, limit = 0, 3
        while not pages or offset < pages[-1]["total"]:
            r = await http.get(
                "/sources/search/cone", params={**cone, "limit": limit, "offset": offset}
            )
            assert r.status_code == 200, r.text
            pages.append(r.json())
            offset += limit
        everything = (
            await http.get("/sources", params={"source_type": "fixed", "limit": 1000})
        ).json()
    expected = sorted(
        (round(_separation_deg(ra, dec, s["ra_deg"], s["dec_deg"]), 6), s["name"])
        for s in everything["items"]
        if _separation_deg(ra, dec, s["ra_deg"], s["dec_deg"]) <= radius
    )
    assert len(expected) >= 5
    assert {p["total"] for p in pages} == {len(expected)}
    assert [(p["limit"], p["offset"]) for p in pages] == [
        (limit, i * limit) for i in range(len(pages))
    ]
    found = [s for p in pages for s in p["items"]]
    assert [s["name"] for s in found] == [name for _, name in expected]
    for s, (distance, _) in zip(found, expected, strict=True):
        assert abs(s["distance_deg"] - distance) < 1e-6


async def test_data_locations_and_routes_check_their_rules(
    tokens: Tokens, main_settings: Settings
) -> None:
    async with serve(main_settings) as url, client(url, tokens.operator) as http:
        relay_without_site = await http.post(
            "/api/transfer/routes",
            json={
                "name": "r",
                "origin_location_id": 2,
                "destination_location_id": 5,
                "route_type": "relay",
            },
        )
        assert relay_without_site.status_code == 422
        assert "via_site_id" in relay_without_site.json()["detail"]
        routes = (await http.get("/api/transfer/routes", params={"route_type": "relay"})).json()
        assert [r["name"] for r in routes["items"]] == ["fyst-to-cornell-via-cologne"]
        archive = (
            await http.get("/api/transfer/locations", params={"role": "long_term_archive"})
        ).json()
        assert {loc["name"] for loc in archive["items"]} == {"cologne-archive", "cologne-s3"}
