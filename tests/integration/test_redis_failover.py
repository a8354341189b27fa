"""The site's buffer on a Redis primary, a replica and three Sentinels (real ``redis-server``
and ``redis-sentinel`` processes): a critical write is answered only once the replica has it,
a primary with no replica in sync takes nothing, and a primary killed under load fails over to
its replica without losing or repeating an acknowledged write."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.redis_sentinel import RedisSentinelSet
from ccat_api.devstack.stack import Stack
from ccat_api.runtime import site_redis
from tests.integration.conftest import Tokens
from tests.support import apply_backlog, client, fetch, serve, site_worker

WRITES = 120


@pytest.fixture(scope="module")
def redis_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelSet]:
    found = RedisSentinelSet(Path(tmp_path_factory.mktemp("sentinel-set")), replicas=1)
    try:
        found.start()
        yield found
    finally:
        found.stop()


@pytest.fixture
def ha_settings(stack: Stack, redis_set: RedisSentinelSet, site_name: str) -> Settings:
    redis_set.wait_primary_known()
    redis_set.wait_replicas_in_sync()
    primary = redis_set.primary_port()
    return Settings.model_validate(
        {
            **stack.settings_overrides(site_name),
            # The gateway's user; the Sentinels say where the primary is.
            "redis_url": redis_set.member_on(primary).url_for("gateway"),
            "redis_sentinels": redis_set.sentinel_addresses,
            "run_processor": False,
            "token_cache_ttl_s": 0,
            "buffer_replica_timeout_ms": 500,
        }
    )


@pytest.fixture
async def ha_worker(ha_settings: Settings) -> AsyncIterator[SiteWorker]:
    async with site_worker(ha_settings) as worker:
        yield worker


def _replica(redis_set: RedisSentinelSet) -> int:
    primary = redis_set.primary_port()
    replica = next(m for m in redis_set.members if m.port != primary)
    assert replica.process is not None
    return replica.process.pid


async def _stream_length(settings: Settings) -> int:
    redis = site_redis(settings)
    try:
        return int(await redis.xlen(SiteKeys(settings.site_name).stream))
    finally:
        await redis.aclose()


async def test_a_write_is_answered_only_once_the_replica_has_it(
    tokens: Tokens, redis_set: RedisSentinelSet, ha_settings: Settings
) -> None:
    """A frozen replica (SIGSTOP: connected, silent) cannot confirm: 503 that says so, though
    the primary took the write; once it thaws, the retry with the same key gets the first
    answer, and the site holds one transaction."""
    pid = _replica(redis_set)
    key = {"Idempotency-Key": f"frozen-{uuid.uuid4()}"}
    async with serve(ha_settings) as url, client(url, tokens.operator) as http:
        os.kill(pid, signal.SIGSTOP)
        try:
            refused = await http.post(
                "/executed_obs_units/start", json={"obs_unit_id": 1}, headers=key
            )
        finally:
            os.kill(pid, signal.SIGCONT)
        assert refused.status_code == 503, refused.text
        assert "replica" in refused.json()["detail"]
        answered = await http.post(
            "/executed_obs_units/start", json={"obs_unit_id": 1}, headers=key
        )
        assert answered.status_code == 201, answered.text
        again = await http.post("/executed_obs_units/start", json={"obs_unit_id": 1}, headers=key)
        assert again.json() == answered.json()
    assert await _stream_length(ha_settings) == 1


async def test_with_no_replica_in_sync_a_write_is_refused_and_nothing_is_buffered(
    tokens: Tokens, redis_set: RedisSentinelSet, ha_settings: Settings
) -> None:
    replica = next(m for m in redis_set.members if m.port != redis_set.primary_port())
    async with serve(ha_settings) as url, client(url, tokens.operator) as http:
        replica.kill()
        try:
            refused = await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
            assert refused.status_code == 503, refused.text
            assert "replicas" in refused.json()["detail"].lower()
            assert await _stream_length(ha_settings) == 0
        finally:
            replica.start()
            redis_set.wait_replicas_in_sync()
        accepted = await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
        assert accepted.status_code == 201, accepted.text
    assert await _stream_length(ha_settings) == 1


async def test_a_primary_killed_under_load_fails_over_and_every_acknowledged_write_applies_once(
    stack: Stack,
    tokens: Tokens,
    redis_set: RedisSentinelSet,
    ha_settings: Settings,
    ha_worker: SiteWorker,
) -> None:
    """Instruments keep writing, each write retried with its own Idempotency-Key until it is
    acknowledged. The primary dies (SIGKILL) a third of the way through; Sentinel promotes the
    replica. With one replica, the new primary takes writes again once the old one is back as
    its replica (min-replicas-to-write 1); until then writes get 503, never a weaker promise."""
    old_primary = redis_set.primary_port()
    acknowledged: dict[str, str] = {}  # Idempotency-Key -> id of the record created
    refused = 0

    async def write(http: httpx.AsyncClient, key: str) -> None:
        nonlocal refused
        while True:
            try:
                r = await http.post(
                    "/executed_obs_units/start",
                    json={"obs_unit_id": 1, "conditions": {"key": key}},
                    headers={"Idempotency-Key": key},
                )
            except httpx.TransportError:
                r = None
            if r is not None and r.status_code == 201:
                acknowledged[key] = r.json()["id"]
                return
            assert r is None or r.status_code == 503, r.text
            refused += 1
            await asyncio.sleep(0.1)

    async with serve(ha_settings) as url, client(url, tokens.service, timeout_s=15) as http:
        keys = [f"failover-{i}-{uuid.uuid4()}" for i in range(WRITES)]
        for key in keys[: WRITES // 3]:
            await write(http, key)
        killed = redis_set.kill_primary()
        rest = asyncio.gather(*(write(http, key) for key in keys[WRITES // 3 :]))
        new_primary = await asyncio.to_thread(lambda: _wait_new_primary(redis_set, old_primary))
        killed.start()  # back, and Sentinel makes it the new primary's replica
        await asyncio.wait_for(rest, 120)
    assert new_primary != old_primary
    assert sorted(acknowledged) == sorted(keys)
    await apply_backlog(ha_worker)
    rows = await fetch(
        stack.main_db.dsn(),
        "SELECT id::text, conditions->>'key' AS key FROM executed_obs_units"
        " WHERE conditions->>'key' LIKE 'failover-%' AND conditions->>'key' = ANY($1)",
        keys,
    )
    on_main: dict[str, list[str]] = {}
    for row in rows:
        on_main.setdefault(row["key"], []).append(row["id"])
    assert {k: v for k, v in on_main.items() if len(v) != 1} == {}, "applied twice"
    assert {k: [v] for k, v in acknowledged.items()} == on_main, "lost or different"
    assert refused > 0  # the failover was felt: writes were refused, then retried


def _wait_new_primary(redis_set: RedisSentinelSet, old: int) -> int:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            port = redis_set.primary_port()
        except RuntimeError:
            port = old
        if port != old:
            return port
        time.sleep(0.1)
    raise TimeoutError("no failover within 30 s")
