"""Two secondary sites, one main: each with its own replica, Redis and WAN link. Both write at
once, one is cut off for part of the run; every acknowledged write of both lands on main
exactly once, each site reads its own writes throughout and the other's once replicated.

Runs on a stack of its own with two sites.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack, StackConfig
from tests.support import (
    buffer_state,
    client,
    eventually,
    fetchval,
    ok,
    processing,
    serve,
    service_token,
    site_worker,
)

SITES = ("observatory", "cornell")
WRITES_PER_SITE = 120


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    started = Stack(StackConfig(gateways=False, processor="none", wan_delay_ms=5, sites=SITES))
    try:
        started.up()
        yield started
    finally:
        started.down()


@pytest.fixture(scope="module")
def token(stack: Stack) -> str:
    return service_token(stack, "two-sites", "operator")


@pytest.fixture(scope="module")
def admin_token(stack: Stack) -> str:
    return service_token(stack, "two-sites-admin", "admin")


def site_settings(stack: Stack, site: str) -> Settings:
    return Settings.model_validate(
        {
            **stack.settings_overrides(site),
            "run_processor": False,
            "token_cache_ttl_s": 0,
            "processor_poll_interval_s": 0.05,
            "write_rate_limit": "",
        }
    )


@contextlib.asynccontextmanager
async def both_sites(stack: Stack, token: str) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Each site's gateway and processor running; a client of each gateway, by site."""
    async with contextlib.AsyncExitStack() as running:
        http: dict[str, httpx.AsyncClient] = {}
        for site in SITES:
            settings = site_settings(stack, site)
            base = await running.enter_async_context(serve(settings))
            http[site] = await running.enter_async_context(client(base, token, timeout_s=30))
            worker = await running.enter_async_context(site_worker(settings))
            await running.enter_async_context(processing(worker))
        yield http


async def write_and_read_back(http: httpx.AsyncClient, site: str, n: int) -> dict[str, Any]:
    """One executed-unit start, read back at once from the same site (read-your-writes)."""
    written = ok(
        await http.post(
            "/executed_obs_units/start",
            json={"obs_unit_id": 1},
        ),
        201,
    )
    read = ok(await http.get(f"/executed_obs_units/{written['id']}"))
    assert read["id"] == written["id"], f"{site} did not read its own write {written['id']}"
    return dict(written)


async def test_two_sites_write_at_once_and_one_is_cut_off(stack: Stack, token: str) -> None:
    settings = {site: site_settings(stack, site) for site in SITES}
    async with both_sites(stack, token) as http:
        written: dict[str, list[dict[str, Any]]] = {site: [] for site in SITES}

        async def writer(site: str) -> None:
            for n in range(WRITES_PER_SITE):
                written[site].append(await write_and_read_back(http[site], site, n))
                if site == "cornell" and n == WRITES_PER_SITE // 3:
                    stack.site("cornell").wan.down()
                if site == "cornell" and n == 2 * WRITES_PER_SITE // 3:
                    # The other site drained all along; this one has waited.
                    assert (await buffer_state(settings["cornell"].redis_url, "cornell"))[
                        "stream"
                    ] > 0
                    stack.site("cornell").wan.up()

        await asyncio.gather(*(writer(site) for site in SITES))

        async def all_applied() -> bool:
            for site in SITES:
                state = await buffer_state(settings[site].redis_url, site)
                assert state["dead"] == 0, (site, state)
                if state["stream"] or state["awaiting_replica"]:
                    return False
            return True

        await eventually(all_applied, timeout_s=120, interval_s=0.3)

        for site in SITES:
            ids = [w["id"] for w in written[site]]
            assert await fetchval(
                stack.main_db.dsn(),
                "SELECT count(*) FROM executed_obs_units WHERE id = ANY($1::uuid[])",
                ids,
            ) == len(ids)
            assert await fetchval(
                stack.main_db.dsn(),
                "SELECT count(*) FROM applied_transactions WHERE site = $1",
                site,
            ) == len(ids)
        # Each site reads the other's writes once its own replica has them.
        for reader, other in (SITES, SITES[::-1]):
            stack.wait_replica_caught_up(site=reader)
            for record in written[other][:: WRITES_PER_SITE // 6]:
                got = ok(await http[reader].get(f"/executed_obs_units/{record['id']}"))
                assert got["id"] == record["id"]


def test_each_site_has_its_own_services(stack: Stack) -> None:
    first, second = (stack.site(name) for name in SITES)
    assert first.replica.port != second.replica.port
    assert first.redis.url != second.redis.url
    assert first.wan_control_port != second.wan_control_port
    slots = stack.main_db.psql(
        "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots"
    )
    assert set(slots.split(",")) >= {first.replica.slot_name, second.replica.slot_name}


async def test_the_same_unit_finished_at_two_sites_is_a_conflict_at_the_later_one(
    stack: Stack, admin_token: str
) -> None:
    async with both_sites(stack, admin_token) as http:
        unit = ok(
            await http["observatory"].post("/executed_obs_units/start", json={"obs_unit_id": 1}),
            201,
        )
        for site in SITES:
            stack.wait_replica_caught_up(site=site)

        async def visible_at_cornell() -> bool:
            return (
                await http["cornell"].get(f"/executed_obs_units/{unit['id']}")
            ).status_code == 200

        await eventually(visible_at_cornell, timeout_s=30)
        cornell = stack.site("cornell")
        # Cornell cut off, and its replica behind: it still sees the unit running.
        cornell.wan.down()
        cornell.replica.psql("SELECT pg_wal_replay_pause()")
        try:
            path = f"/executed_obs_units/{unit['id']}/finish"
            ok(await http["observatory"].put(path, json={"status": "success"}))
            stale = ok(await http["cornell"].put(path, json={"status": "interrupted"}))

            async def applied_at_observatory() -> bool:
                status = "SELECT status FROM executed_obs_units WHERE id = $1::uuid"
                found: str | None = await fetchval(stack.main_db.dsn(), status, unit["id"])
                return found == "success"

            await eventually(applied_at_observatory, timeout_s=30)
        finally:
            cornell.replica.psql("SELECT pg_wal_replay_resume()")
            cornell.wan.up()

        async def conflicted() -> dict[str, Any] | None:
            tx = ok(await http["cornell"].get(f"/transactions/{stale['tx_id']}"))
            return tx if tx["state"] == "failed" else None

        dead = await eventually(conflicted, timeout_s=60)
        assert dead is not None
        assert dead["error_code"] == "conflict", dead
        assert dead["conflict"]["main"]["status"] == "success"
        assert dead["conflict"]["change"]["status"] == "interrupted"
        assert (dead["conflict"]["base_version"], dead["conflict"]["main_version"]) == (1, 2)

        # Cornell's operator lets the observatory's finish stand.
        assert (
            await http["cornell"].post(f"/transactions/{stale['tx_id']}/discard")
        ).status_code == 204
        stack.wait_replica_caught_up(site="cornell")
        seen = ok(await http["cornell"].get(f"/executed_obs_units/{unit['id']}"))
        assert seen["status"] == "success"
