"""Replay on main: exactly once through crashes, order, poison isolation, transient failures,
Redis restarts and WAN outages."""

from __future__ import annotations

import asyncio
import functools
import random
import signal
import uuid
from typing import Any

import httpx
import pytest

from ccat_api.buffering.executor import TransientReplayError
from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.failpoints import CRASH_EXIT_CODE
from ccat_api.runtime import build_worker, make_redis
from tests.integration.conftest import Tokens
from tests.support import (
    buffer_state,
    client,
    eventually,
    fetchval,
    refused_on_main,
    serve,
    start_eou,
)

FILE = {
    "size_bytes": 2048,
    "checksum": "sha256:aabbccddeeff0011",
    "file_type": "fits",
    "instrument_module_id": 1,
}


async def post_file(http: httpx.AsyncClient, eou: str, path: str) -> dict[str, Any]:
    r = await http.post(
        "/raw_data_files",
        json={
            **FILE,
            "name": path.rsplit("/", 1)[-1],
            "relative_path": path,
            "executed_obs_unit_id": eou,
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def applied_on_main(stack: Stack, site: str) -> int:
    return int(
        await fetchval(
            stack.main_db.dsn(), "SELECT count(*) FROM applied_transactions WHERE site = $1", site
        )
    )


async def drain(worker: SiteWorker, stack: Stack, *, timeout_s: float = 60) -> None:
    """Run the processor until the stream is empty, then the tracker until all is visible."""

    async def settled() -> bool:
        await worker.processor.run_once()
        stack.wait_replica_caught_up()
        await worker.tracker.run_once()
        return await worker.processor.backlog() == (0, 0)

    await eventually(settled, timeout_s=timeout_s, interval_s=0)


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


async def test_processor_killed_between_commit_and_ack_applies_each_transaction_once(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    site = secondary_settings.site_name
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = await start_eou(http)
        for i in range(10):
            await post_file(http, eou["id"], f"{eou['id']}/{i}.fits")
    crashing = stack.start_processor(
        site,
        burst=True,
        env={"CCAT_FAILPOINTS": "after_commit", "CCAT_PROCESSOR_LEASE_TTL_S": "0.5"},
    )
    assert await asyncio.to_thread(crashing.wait, 60) == CRASH_EXIT_CODE
    await asyncio.sleep(0.7)  # the dead processor's lease runs out
    # Committed on main, but Redis never heard: the entries are still pending.
    assert await applied_on_main(stack, site) == 11
    assert (await buffer_state(secondary_settings.redis_url, site))["stream"] == 11

    assert await worker.processor.run_once() == 11
    assert await applied_on_main(stack, site) == 11
    state = await buffer_state(secondary_settings.redis_url, site)
    assert state["stream"] == 0
    assert state["dead"] == 0
    assert state["awaiting_replica"] == 11
    rows = await fetchval(
        stack.main_db.dsn(),
        "SELECT count(*) FROM raw_data_files WHERE executed_obs_unit_id = $1::uuid",
        eou["id"],
    )
    assert rows == 10


async def test_processor_killed_at_random_moments_loses_and_repeats_nothing(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    site = secondary_settings.site_name
    count = 300
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = await start_eou(http)
        for i in range(count - 1):
            await post_file(http, eou["id"], f"{eou['id']}/{i:04d}.fits")
    # Small batches over a slow link so kills land mid-batch as well as between batches.
    stack.wan.set_delay(20)
    env = {"CCAT_PROCESSOR_BATCH_SIZE": "5", "CCAT_PROCESSOR_LEASE_TTL_S": "0.5"}
    rng = random.Random(20261122)
    kills_mid_drain = 0

    async def stream_length() -> int:
        return (await buffer_state(secondary_settings.redis_url, site))["stream"]

    for _ in range(8):
        remaining = await stream_length()
        victim = stack.start_processor(site, env=env)
        # Kill it once it is working: at a random moment within its next batch or two.
        await eventually(
            functools.partial(_below, stream_length, remaining), timeout_s=30, interval_s=0.01
        )
        await asyncio.sleep(rng.uniform(0, 0.12))
        assert victim.process is not None
        victim.process.send_signal(signal.SIGKILL)
        victim.wait(10)
        if await stream_length() > 0:
            kills_mid_drain += 1
        await asyncio.sleep(0.6)  # the dead processor's lease expires
    stack.wan.set_delay(0)
    await drain(worker, stack)
    assert kills_mid_drain == 8
    assert await applied_on_main(stack, site) == count
    state = await buffer_state(secondary_settings.redis_url, site)
    assert state == {**state, "stream": 0, "dead": 0, "overlay": 0, "awaiting_replica": 0}
    assert (
        await fetchval(
            stack.main_db.dsn(),
            "SELECT count(*) FROM raw_data_files WHERE executed_obs_unit_id = $1::uuid",
            eou["id"],
        )
        == count - 1
    )


async def _below(length: Any, than: int) -> bool:
    return bool(await length() < than)


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


async def test_redis_killed_with_a_backlog_loses_nothing(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    site = secondary_settings.site_name
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        eou = await start_eou(http)
        accepted = [await post_file(http, eou["id"], f"{eou['id']}/{i}.fits") for i in range(50)]
    await asyncio.to_thread(stack.redis.restart_after_kill)
    redis = make_redis(secondary_settings.redis_url)
    worker = build_worker(secondary_settings, redis)
    try:
        assert (await buffer_state(secondary_settings.redis_url, site))["stream"] == 51
        await drain(worker, stack)
    finally:
        await worker.processor.close()
        await worker.tracker.close()
        await redis.aclose()
    ids = [uuid.UUID(a["id"]) for a in accepted]
    found = await fetchval(
        stack.main_db.dsn(), "SELECT count(*) FROM raw_data_files WHERE id = ANY($1::uuid[])", ids
    )
    assert found == 50


async def test_gateway_killed_after_answering_loses_nothing(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    site = secondary_settings.site_name
    url = stack.start_gateway(site, secondary=True)
    try:
        async with client(url, tokens.operator) as http:
            await eventually(lambda: _health_ok(http))
            eou = await start_eou(http)
            files = [await post_file(http, eou["id"], f"{eou['id']}/{i}.fits") for i in range(20)]
    finally:
        stack.gateways.pop(site).kill()
    await drain(worker, stack)
    ids = [uuid.UUID(f["id"]) for f in files]
    assert (
        await fetchval(
            stack.main_db.dsn(),
            "SELECT count(*) FROM raw_data_files WHERE id = ANY($1::uuid[])",
            ids,
        )
        == 20
    )


async def _health_ok(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/health")).status_code == 200
    except httpx.TransportError:
        return False


async def test_only_the_lease_holder_replays_and_a_successor_takes_over(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    settings = secondary_settings.model_copy(update={"processor_lease_ttl_s": 0.5})
    redis = make_redis(settings.redis_url)
    first, second = build_worker(settings, redis), build_worker(settings, redis)
    async with serve(settings) as url, client(url, tokens.operator) as http:
        await start_eou(http)
        assert await first.processor.run_once() == 1
        await start_eou(http)
        assert await second.processor.run_once() == 0  # standing by
        await asyncio.sleep(0.8)  # first stops renewing: its lease expires
        assert await second.processor.run_once() == 1
        # The deposed processor's epoch is refused by main even if it thinks it may go on.
        await start_eou(http)
        stale_epoch = first.lease.epoch
        assert stale_epoch is not None
        assert stale_epoch < (second.lease.epoch or 0)
    for w in (first, second):
        await w.processor.close()
    await redis.aclose()


async def test_deposed_processor_is_fenced_off_on_main(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    from ccat_api.buffering.envelope import BufferedTransaction, Envelope
    from ccat_api.buffering.executor import BatchExecutor, LeaseSuperseded
    from ccat_api.runtime import plain_dsn

    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        await start_eou(http)
    redis = make_redis(secondary_settings.redis_url)
    worker = build_worker(secondary_settings, redis)
    assert await worker.processor.run_once() == 1  # fence now holds the current epoch
    current = worker.lease.epoch
    assert current is not None
    executor = BatchExecutor(
        plain_dsn(stack.main_db.url()), secondary_settings.site_name,
        timeout_s=5, connect_timeout_s=5, statement_timeout_s=5,
    )  # fmt: skip
    from ccat_api.buffering.envelope import Op, Principal, Step

    envelope = Envelope(
        tx_id=str(uuid.uuid4()), site=secondary_settings.site_name,
        principal=Principal(None, "stale", "operator"), created_at="2026-01-01T00:00:00+00:00",
        steps=(Step(Op.UPDATE, "executed_obs_units", str(uuid.uuid4()), {"status": "failed"}),),
    )  # fmt: skip
    with pytest.raises(LeaseSuperseded):
        await executor.apply([BufferedTransaction(envelope, seq=1, deps=())], current - 1)
    await executor.close()
    await worker.processor.close()
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


async def test_a_paused_processor_whose_lease_was_taken_does_not_replay(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    from ccat_api.buffering.keys import SiteKeys

    settings = secondary_settings.model_copy(update={"processor_lease_ttl_s": 30.0})
    redis = make_redis(settings.redis_url)
    first, second = build_worker(settings, redis), build_worker(settings, redis)
    async with serve(settings) as url, client(url, tokens.operator) as http:
        assert await first.processor.run_once() == 0  # takes the lease
        # First "pauses" past its lease; second takes over (the key expired meanwhile).
        await redis.delete(SiteKeys(settings.site_name).lease)
        assert await second.processor.run_once() == 0
        await start_eou(http)
        # Well within first's renewal interval, it still must notice it lost the lease.
        assert await first.processor.run_once() == 0
        assert await second.processor.run_once() == 1
    for w in (first, second):
        await w.processor.close()
    await redis.aclose()
