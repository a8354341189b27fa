from __future__ import annotations

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import client, fetchval, serve


async def test_buffered_write_reaches_main_and_becomes_visible(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        r = await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "buffered"
        eou = body["id"]
        r = await http.get(f"/executed_obs_units/{eou}")
        assert r.status_code == 200, r.text
        assert await worker.processor.run_once() == 1
        assert (
            await fetchval(
                stack.main_db.dsn(),
                "SELECT count(*) FROM executed_obs_units WHERE id = $1::uuid",
                eou,
            )
            == 1
        )
        stack.wait_replica_caught_up()
        settled = await worker.tracker.run_once()
        assert settled == [body["tx_id"]]
        r = await http.get(f"/transactions/{body['tx_id']}")
        assert r.json()["state"] == "visible", r.text
