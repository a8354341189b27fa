"""Replay on main through outages: main down is retried with backoff and never dead-lettered,
and a backlog made during a WAN outage drains once it heals."""

from __future__ import annotations

import pytest

from ccat_api.buffering.executor import TransientReplayError
from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.runtime import build_worker, make_redis
from tests.integration.backlog import drain, post_file
from tests.integration.conftest import Tokens
from tests.support import client, serve, start_eou


async def test_main_down_is_retried_with_backoff_and_never_dead_lettered(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        assert await worker.processor.run_once() == 0  # holds the lease, fence claimed
        eou = await start_eou(http)
        stack.main_db.stop("fast")
        try:
            with pytest.raises(TransientReplayError):
                await worker.processor.run_once()
            with pytest.raises(TransientReplayError):
                await worker.processor.run_once()
            status = (await http.get(f"/transactions/{eou['tx_id']}")).json()
            assert status["state"] == "buffered"
            assert status["attempts"] == 2
            assert status["last_error"]
            # Reads at the site carry on from the replica and the buffer.
            assert (await http.get(f"/executed_obs_units/{eou['id']}")).status_code == 200
        finally:
            stack.main_db.start()
        await drain(worker, stack)
        status = (await http.get(f"/transactions/{eou['tx_id']}")).json()
        assert status["state"] == "visible"


async def test_wan_outage_backlog_drains_after_it_heals(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    settings = secondary_settings.model_copy(
        update={"processor_main_timeout_s": 1.0, "db_connect_timeout_s": 1.0}
    )
    redis = make_redis(settings.redis_url)
    worker = build_worker(settings, redis)
    async with serve(settings) as url, client(url, tokens.operator) as http:
        stack.wan.down()
        eou = await start_eou(http)
        files = [await post_file(http, eou["id"], f"{eou['id']}/{i}.fits") for i in range(25)]
        with pytest.raises(TransientReplayError):
            await worker.processor.run_once()
        assert (await http.get(f"/raw_data_files?executed_obs_unit_id={eou['id']}")).json()[
            "total"
        ] == 25
        stack.wan.up()
        await drain(worker, stack)
        for f in (eou, *files):
            assert (await http.get(f"/transactions/{f['tx_id']}")).json()["state"] == "visible"
        listed = (await http.get(f"/raw_data_files?executed_obs_unit_id={eou['id']}")).json()
        assert listed["total"] == 25
    await worker.processor.close()
    await worker.tracker.close()
    await redis.aclose()
