"""Poison isolation in replay on main: a transaction main refuses is dead-lettered with its
dependents while the others apply, a batch main cannot read is split down to its culprit,
and a retried dead letter applies (and reads) before what depends on it."""

from __future__ import annotations

import pytest

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.runtime import build_worker, make_redis
from tests.integration.backlog import applied_on_main, drain, post_file
from tests.integration.conftest import Tokens
from tests.support import buffer_state, client, fetchval, refused_on_main, serve, start_eou


async def test_poison_transaction_dead_letters_with_its_dependents_and_others_apply(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    site = secondary_settings.site_name
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = await start_eou(http)
        assert await worker.processor.run_once() == 1
        stack.wait_replica_caught_up()
        await worker.tracker.run_once()
        # Someone at main takes a path the site cannot know about yet: the replica is held.
        poison_path = f"{eou['id']}/clash.fits"
        stack.replica.psql("SELECT pg_wal_replay_pause()")
        try:
            stack.main_db.psql(
                "INSERT INTO raw_data_files (id, name, relative_path, size_bytes, checksum,"
                " file_type, instrument_module_id, executed_obs_unit_id) VALUES"
                f" (gen_random_uuid(), 'x', '{poison_path}', 1, 'md5:00000000', 'fits', 1,"
                f" '{eou['id']}')",
                user="ccat",
            )
            before = await post_file(http, eou["id"], f"{eou['id']}/before.fits")
            poison = await post_file(http, eou["id"], poison_path)
            package = await http.post(
                "/raw_data_package",
                json={
                    "name": f"pkg-{eou['id']}",
                    "executed_obs_unit_id": eou["id"],
                    "instrument_module_id": 1,
                    "raw_data_file_ids": [poison["id"]],
                },
            )
            assert package.status_code == 201, package.text
            dependent = package.json()
            after = await post_file(http, eou["id"], f"{eou['id']}/after.fits")
            assert await worker.processor.run_once() == 4
        finally:
            stack.replica.psql("SELECT pg_wal_replay_resume()")

        failed = (await http.get("/transactions", params={"state": "failed"})).json()
        assert {t["tx_id"] for t in failed["items"]} == {poison["tx_id"], dependent["tx_id"]}
        by_id = {t["tx_id"]: t for t in failed["items"]}
        assert by_id[poison["tx_id"]]["error_code"] == "23505"
        assert "relative_path" in by_id[poison["tx_id"]]["error"]
        assert by_id[dependent["tx_id"]]["error_code"] == "dependency_failed"
        for ok in (before, after):
            assert (await http.get(f"/transactions/{ok['tx_id']}")).json()["state"] == "applied"
        # The dead letters' records no longer show at the site.
        assert (await http.get(f"/raw_data_package/{dependent['id']}")).status_code == 404
        stack.wait_replica_caught_up()
        files = (
            await http.get("/raw_data_files", params={"executed_obs_unit_id": eou["id"]})
        ).json()
        assert poison["id"] not in {f["id"] for f in files["items"]}
        # Main's own file at the contested path is what the site reads now.
        paths = sorted(f["relative_path"] for f in files["items"])
        assert paths == sorted([f"{eou['id']}/{n}.fits" for n in ("before", "after", "clash")])
    assert await applied_on_main(stack, site) == 3


async def test_dependents_accepted_later_follow_a_dead_letter(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    """A transaction that depends on one already dead-lettered never reaches main."""
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = await start_eou(http)
        finish = (await http.put(f"/executed_obs_units/{eou['id']}/finish", json={})).json()
        # Main refuses the first transaction (as it would a constraint it now enforces).
        settings = secondary_settings.model_copy(update={"processor_batch_size": 1})
        redis = make_redis(settings.redis_url)
        single = build_worker(settings, redis)
        with refused_on_main(stack, "executed_obs_units", f"id <> '{eou['id']}'::uuid"):
            assert await single.processor.run_once() == 1
        assert await single.processor.run_once() == 1
        states = {
            t: (await http.get(f"/transactions/{t}")).json()
            for t in (eou["tx_id"], finish["tx_id"])
        }
        assert states[eou["tx_id"]]["error_code"] == "23514"
        assert states[finish["tx_id"]]["error_code"] == "dependency_failed"
        assert await applied_on_main(stack, secondary_settings.site_name) == 0
        # The operator fixed main; retrying the root brings its dependent back too, in order.
        async with client(url, tokens.admin) as admin:
            retried = (await admin.post(f"/transactions/{eou['tx_id']}/retry")).json()
        assert retried["retried"] == [eou["tx_id"], finish["tx_id"]]
        assert (await http.get(f"/executed_obs_units/{eou['id']}")).json()["status"] == "success"
        assert await single.processor.run_once() == 1
        assert await single.processor.run_once() == 1
        assert await applied_on_main(stack, secondary_settings.site_name) == 2
        await single.processor.close()
        await redis.aclose()


@pytest.mark.parametrize("batch_size", [1, 100])
async def test_retried_dead_letter_applies_before_its_still_pending_dependents(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, batch_size: int
) -> None:
    """After a retry the root sits behind its dependent in the stream; the dependent must be
    held back, not applied first (its update would then be overwritten by the root's)."""
    one = secondary_settings.model_copy(update={"processor_batch_size": 1})
    chosen = secondary_settings.model_copy(update={"processor_batch_size": batch_size})
    redis = make_redis(secondary_settings.redis_url)
    first, then = build_worker(one, redis), build_worker(chosen, redis)
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = await start_eou(http)
        finish = (
            await http.put(f"/executed_obs_units/{eou['id']}/finish", json={"status": "failed"})
        ).json()
        with refused_on_main(stack, "executed_obs_units", f"id <> '{eou['id']}'::uuid"):
            assert await first.processor.run_once() == 1  # the start fails; finish still waits
        await first.processor.close()
        await first.lease.release()
        async with client(url, tokens.admin) as admin:
            retried = (await admin.post(f"/transactions/{eou['tx_id']}/retry")).json()
        assert retried["retried"] == [eou["tx_id"]]
        for _ in range(4):
            await then.processor.run_once()
        order = await fetchval(
            stack.main_db.dsn(),
            "SELECT array_agg(tx_id::text ORDER BY applied_at) FROM applied_transactions"
            " WHERE site = $1",
            secondary_settings.site_name,
        )
        assert order == [eou["tx_id"], finish["tx_id"]]
        assert (
            await fetchval(
                stack.main_db.dsn(),
                "SELECT status FROM executed_obs_units WHERE id = $1::uuid",
                eou["id"],
            )
            == "failed"
        )
        assert (await buffer_state(secondary_settings.redis_url, secondary_settings.site_name))[
            "dead"
        ] == 0
    await then.processor.close()
    await redis.aclose()


async def test_a_batch_main_cannot_read_is_split_and_only_the_culprit_dead_letters(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    """A transaction that slipped past validation (say, buffered by an older gateway) with a
    value PostgreSQL cannot parse must not stop the site's replay."""
    from ccat_api.buffering.buffer import WriteBuffer
    from ccat_api.buffering.builder import TransactionBuilder
    from ccat_api.buffering.envelope import Principal
    from ccat_api.buffering.idempotency import Answer
    from ccat_api.buffering.keys import SiteKeys

    redis = make_redis(secondary_settings.redis_url)
    buffer = WriteBuffer(redis, SiteKeys(secondary_settings.site_name), idempotency_ttl_s=60)
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        before = await start_eou(http)
        builder = TransactionBuilder(
            secondary_settings.site_name, Principal(None, "old-gateway", "operator")
        )
        builder.update("executed_obs_units", before["id"], {"conditions": {"note": "a\x00b"}}, {})
        bad = builder.build()
        await buffer.accept(bad, Answer(201, {}))
        after = [await start_eou(http) for _ in range(3)]
        assert await worker.processor.run_once() == 5
        states = {
            t: (await http.get(f"/transactions/{t}")).json()
            for t in [before["tx_id"], bad.tx_id, *[a["tx_id"] for a in after]]
        }
    await redis.aclose()
    assert states.pop(bad.tx_id)["error_code"].startswith("22")
    assert {s["state"] for s in states.values()} == {"applied"}


async def test_retried_dead_letter_folds_last_in_reads_as_it_applies_last_on_main(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = await start_eou(http)
        assert await worker.processor.run_once() == 1
        first = (
            await http.put(f"/executed_obs_units/{eou['id']}/finish", json={"status": "failed"})
        ).json()
        with refused_on_main(stack, "executed_obs_units", "status <> 'failed'"):
            assert await worker.processor.run_once() == 1
        # The failed finish no longer shows; the unit is running again and finishes anew.
        assert (await http.get(f"/executed_obs_units/{eou['id']}")).json()["status"] == "running"
        second = await http.put(
            f"/executed_obs_units/{eou['id']}/finish", json={"status": "success"}
        )
        assert second.status_code == 200
        async with client(url, tokens.admin) as admin:
            assert (await admin.post(f"/transactions/{first['tx_id']}/retry")).status_code == 200
        pending_view = (await http.get(f"/executed_obs_units/{eou['id']}")).json()["status"]
        await drain(worker, stack)
        final_view = (await http.get(f"/executed_obs_units/{eou['id']}")).json()["status"]
        on_main = await fetchval(
            stack.main_db.dsn(),
            "SELECT status FROM executed_obs_units WHERE id = $1::uuid",
            eou["id"],
        )
        assert pending_view == final_view == on_main == "failed"
