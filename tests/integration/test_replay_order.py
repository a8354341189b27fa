"""Replay on main keeps order: transactions apply in acceptance order, dependent ones apply
together in one batch, and a unique value stays claimed while the replica catches up."""

from __future__ import annotations

from typing import Any

import pytest

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.runtime import build_worker, make_redis
from tests.integration.backlog import FILE, post_file
from tests.integration.conftest import Tokens
from tests.support import client, fetchval, serve, start_eou


async def test_transactions_apply_in_acceptance_order(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    settings = secondary_settings.model_copy(update={"processor_batch_size": 1})
    redis = make_redis(settings.redis_url)
    one_at_a_time = build_worker(settings, redis)
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = await start_eou(http)
        files = [await post_file(http, eou["id"], f"{eou['id']}/{i}.fits") for i in range(3)]
        finish = (await http.put(f"/executed_obs_units/{eou['id']}/finish", json={})).json()
    for _ in range(5):
        assert await one_at_a_time.processor.run_once() == 1
    order = await fetchval(
        stack.main_db.dsn(),
        "SELECT array_agg(tx_id::text ORDER BY applied_at, seq) FROM applied_transactions"
        " WHERE site = $1",
        secondary_settings.site_name,
    )
    assert order == [eou["tx_id"], *[f["tx_id"] for f in files], finish["tx_id"]]
    status = await fetchval(
        stack.main_db.dsn(), "SELECT status FROM executed_obs_units WHERE id = $1::uuid", eou["id"]
    )
    assert status == "success"
    await one_at_a_time.processor.close()
    await redis.aclose()


async def test_one_batch_applies_dependent_transactions_together(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = await start_eou(http)
        files = [await post_file(http, eou["id"], f"{eou['id']}/{i}.fits") for i in range(5)]
        r = await http.post(
            "/raw_data_package",
            json={
                "name": f"pkg-{eou['id']}",
                "executed_obs_unit_id": eou["id"],
                "instrument_module_id": 1,
                "raw_data_file_ids": [f["id"] for f in files[:3]],
                "files": [{**FILE, "name": "extra", "relative_path": f"{eou['id']}/extra.fits"}],
            },
        )
        assert r.status_code == 201, r.text
        package = r.json()
        await http.put(
            f"/raw_data_package/{package['id']}/finalize", json={"checksum": "md5:0123456789"}
        )
        await http.put(f"/executed_obs_units/{eou['id']}/finish", json={})
    assert await worker.processor.run_once() == 9
    in_package = await fetchval(
        stack.main_db.dsn(),
        "SELECT count(*) FROM raw_data_files WHERE raw_data_package_id = $1::uuid",
        package["id"],
    )
    assert in_package == 4
    assert (
        await fetchval(
            stack.main_db.dsn(),
            "SELECT status || ':' || file_count FROM raw_data_packages WHERE id = $1::uuid",
            package["id"],
        )
        == "complete:4"
    )


async def test_unique_value_stays_claimed_while_the_replica_catches_up(
    stack: Stack,
    tokens: Tokens,
    secondary_settings: Settings,
    worker: SiteWorker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Write B checks the replica for its path just before the replica shows write A with
    the same path and the tracker drops A from the overlay: B must still be refused."""
    from ccat_api.buffering.reads import MergedReader

    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = await start_eou(http)
        path = f"{eou['id']}/contested.fits"
        await post_file(http, eou["id"], path)
        original = MergedReader.replica_values_taken

        async def check_then_let_the_replica_catch_up(
            self: MergedReader, model: str, column: str, values: Any
        ) -> set[Any]:
            taken = await original(self, model, column, values)
            stack.replica.psql("SELECT pg_wal_replay_resume()")
            stack.wait_replica_caught_up()
            assert await worker.tracker.run_once()  # A is visible: it leaves the overlay
            return taken

        monkeypatch.setattr(
            MergedReader, "replica_values_taken", check_then_let_the_replica_catch_up
        )
        stack.replica.psql("SELECT pg_wal_replay_pause()")
        try:
            assert await worker.processor.run_once() == 2  # A is on main, not on the replica
            clash = await http.post(
                "/raw_data_files",
                json={
                    **FILE,
                    "name": "b",
                    "relative_path": path,
                    "executed_obs_unit_id": eou["id"],
                },
            )
        finally:
            stack.replica.psql("SELECT pg_wal_replay_resume()")
        assert clash.status_code == 409, clash.text
