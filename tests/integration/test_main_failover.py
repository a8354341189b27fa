"""Main as a primary and an asynchronous streaming standby: a promotion is followed by the
main site's gateway, the site's processor and the site's replica, and a batch that main
committed and the site recorded as applied, but that the promoted standby never received, is
applied again from the envelope the site kept: nothing lost, nothing applied twice.

Runs on a stack of its own (main with a standby), through the WAN simulator.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from ccat_api.buffering.keys import SiteKeys
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack, StackConfig
from ccat_api.runtime import make_redis
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

FILE = {
    "size_bytes": 2048,
    "checksum": "sha256:aabbccddeeff0011",
    "file_type": "fits",
    "instrument_module_id": 1,
}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    started = Stack(
        StackConfig(gateways=False, processor="none", wan_delay_ms=5, main_standby=True)
    )
    try:
        started.up()
        yield started
    finally:
        started.down()


@pytest.fixture(scope="module")
def token(stack: Stack) -> str:
    return service_token(stack, "failover-operator", "operator", main_url=stack.main_url)


@pytest.fixture
def settings(stack: Stack) -> Settings:
    return Settings.model_validate(
        {
            **stack.settings_overrides(f"t{uuid.uuid4().hex[:12]}"),
            "run_processor": False,
            "token_cache_ttl_s": 0,
            "processor_poll_interval_s": 0.05,
            "write_rate_limit": "",
        }
    )


async def main_count(stack: Stack, sql: str, *args: object) -> int:
    return int(await fetchval(stack.main_db.dsn(), sql, *args))


async def kept(settings: Settings) -> int:
    redis = make_redis(settings.redis_url)
    try:
        return int(await redis.zcard(SiteKeys(settings.site_name).undurable))
    finally:
        await redis.aclose()


async def test_a_batch_the_promoted_standby_never_received_is_applied_again_once(
    stack: Stack, token: str, settings: Settings
) -> None:
    assert stack.main_standby is not None
    async with serve(settings) as base, client(base, token, timeout_s=30) as http:
        eou = ok(await http.post("/executed_obs_units/start", json={"obs_unit_id": 1}), 201)
        files = [
            ok(
                await http.post(
                    "/raw_data_files",
                    json={
                        **FILE,
                        "name": f"f{n}.fits",
                        "relative_path": f"{eou['id']}/f{n}.fits",
                        "executed_obs_unit_id": eou["id"],
                    },
                ),
                201,
            )
            for n in range(20)
        ]
        tx_ids = [eou["tx_id"], *(f["tx_id"] for f in files)]
        # The standby and the site's replica stop receiving; main commits the batch alone.
        stack.main_standby.stop("fast")
        stack.replica.stop("fast")
        async with site_worker(settings) as worker:
            async with processing(worker):
                await eventually(lambda: _stream_empty(settings), timeout_s=60, interval_s=0.1)
            applied_before = await main_count(
                stack,
                "SELECT count(*) FROM applied_transactions WHERE site = $1",
                settings.site_name,
            )
            assert applied_before == len(tx_ids)
            # Applied, and kept: no standby of main has them.
            assert await kept(settings) == len(tx_ids)

            # Main's primary dies; the standby that never saw the batch is promoted.
            stack.main_db.kill()
            stack.main_standby.start()
            stack.fail_over_main()
            stack.replica.start()
            assert (
                await main_count(
                    stack,
                    "SELECT count(*) FROM applied_transactions WHERE site = $1",
                    settings.site_name,
                )
                == 0
            ), "the promoted standby should not have the batch"
            # The site tells the new main its retention watermark before it replays anything
            # (the watermark stays at or below the kept transactions; main refuses a replay as
            # pruned only below it and past the retention horizon).
            await worker.processor.upkeep.report_watermark(force=True)

            async with processing(worker):

                async def settled() -> bool:
                    state = await buffer_state(settings.redis_url, settings.site_name)
                    return state["stream"] == 0 and state["awaiting_replica"] == 0

                await eventually(settled, timeout_s=90, interval_s=0.2)
                await eventually(lambda: _none_kept(settings), timeout_s=30, interval_s=0.2)

        assert await main_count(
            stack,
            "SELECT count(*) FROM applied_transactions WHERE tx_id = ANY($1::uuid[])",
            tx_ids,
        ) == len(tx_ids)
        assert await main_count(
            stack,
            "SELECT count(*) FROM raw_data_files WHERE executed_obs_unit_id = $1::uuid",
            eou["id"],
        ) == len(files)
        assert (await buffer_state(settings.redis_url, settings.site_name))["dead"] == 0
        # The site's replica followed the new timeline: it reads what the new main has.
        listed = ok(await http.get("/raw_data_files", params={"executed_obs_unit_id": eou["id"]}))
        assert listed["total"] == len(files)


async def test_gateways_and_the_site_follow_a_promotion_under_writes(
    stack: Stack, token: str, settings: Settings
) -> None:
    main_settings = Settings.model_validate(
        {**stack.settings_overrides("main", secondary=False), "write_rate_limit": ""}
    )
    async with (
        serve(settings) as base,
        client(base, token, timeout_s=30) as http,
        serve(main_settings) as main_base,
        client(main_base, token, timeout_s=30) as main_http,
        site_worker(settings) as worker,
        processing(worker),
    ):
        before = ok(await http.post("/executed_obs_units/start", json={"obs_unit_id": 1}), 201)
        at_main_before = ok(
            await main_http.post("/executed_obs_units/start", json={"obs_unit_id": 1}), 201
        )
        # Both writes on the standby before the primary dies (a planned switchover's case;
        # the other test covers a commit the standby never received).
        stack.wait_main_standby_caught_up()
        stack.fail_over_main()
        after = ok(await http.post("/executed_obs_units/start", json={"obs_unit_id": 1}), 201)

        async def main_site_writes() -> bool:
            response = await main_http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
            return response.status_code == 201

        # The main site's pool finds the new primary once its old connections fail.
        await eventually(main_site_writes, timeout_s=60, interval_s=0.5)

        async def visible_at_site() -> bool:
            response = await http.get(f"/executed_obs_units/{after['id']}")
            state = await buffer_state(settings.redis_url, settings.site_name)
            return response.status_code == 200 and state["awaiting_replica"] == 0

        await eventually(visible_at_site, timeout_s=90, interval_s=0.2)
        for written in (before, after, at_main_before):
            assert (
                await main_count(
                    stack,
                    "SELECT count(*) FROM executed_obs_units WHERE id = $1::uuid",
                    written["id"],
                )
                == 1
            )


async def _stream_empty(settings: Settings) -> bool:
    return (await buffer_state(settings.redis_url, settings.site_name))["stream"] == 0


async def _none_kept(settings: Settings) -> bool:
    return await kept(settings) == 0
