"""The site's local replica stopped: what was accepted is applied on main once and nothing is
cleaned up early; the site still says how it is (status, metrics) to credentials it had
verified, answers 503 (never 401, never a half-written record) where it needs the replica,
and settles everything once the replica is back."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from ccat_api.buffering.tracker import ReplicaUnavailable
from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.integration.exposition import site_metric
from tests.support import RAW_FILE, buffer_state, client, fetch, ok, serve, start_eou


@pytest.fixture
def replica_stoppable(stack: Stack) -> Any:
    """The replica is running again after the test, and caught up, whatever the test did."""
    yield stack.replica
    if not stack.replica.is_running():
        stack.replica.start()
    stack.wait_replica_caught_up(timeout_s=60)


async def test_replica_down_loses_nothing_and_everything_settles_when_it_returns(
    stack: Stack,
    tokens: Tokens,
    secondary_settings: Settings,
    worker: SiteWorker,
    replica_stoppable: Any,
) -> None:
    settings = secondary_settings.model_copy(
        update={"live_status_interval_s": 0.1, "db_connect_timeout_s": 2.0}
    )
    site = settings.site_name
    async with serve(settings) as url, client(url, tokens.operator) as http:
        unit = await start_eou(http)
        files = [
            ok(
                await http.post(
                    "/raw_data_files",
                    json={**RAW_FILE, "name": f"f{i}", "relative_path": f"{site}/f{i}.fits",
                          "size_bytes": 100 + i, "executed_obs_unit_id": unit["id"]},
                ),
                201,
            )
            for i in range(3)
        ]  # fmt: skip
        accepted = [unit, *files]
        # Status and metrics seen once with the replica up: this token is now known here.
        assert ok(await http.get("/api/site/status"))["replica"]["ok"] is True
        assert (await buffer_state(settings.redis_url, site))["stream"] == 4

        await asyncio.to_thread(replica_stoppable.stop)

        # Replay needs main only: everything is applied there, once.
        assert await worker.processor.run_once() == 4
        # The tracker cannot see the replica, so nothing is settled and no layer is removed.
        with pytest.raises(ReplicaUnavailable):
            await worker.tracker.run_once()
        held = await buffer_state(settings.redis_url, site)
        assert (held["stream"], held["awaiting_replica"]) == (0, 4)
        assert held["overlay"] >= 4

        # The operator can still see how the site is, with the credential it used before.
        await asyncio.sleep(0.2)  # past the cached sample
        status = ok(await http.get("/api/site/status"))
        assert status["replica"]["ok"] is False
        assert status["replica"]["error"]
        assert status["buffer"]["awaiting_replica"] == 4
        scraped = await http.get("/metrics")
        assert scraped.status_code == 200, scraped.text
        assert site_metric(scraped.text, "ccat_replica_up", site) == 0

        # A credential never seen here cannot be checked: come back later, not "unknown".
        async with client(url, tokens.viewer) as stranger:
            refused = await stranger.get("/api/site/status")
            assert refused.status_code == 503, refused.text
            assert "Retry-After" in refused.headers
        # A critical write whose references the site has already checked needs nothing else
        # from the replica: it is accepted, and applied like the others.
        late = await start_eou(http)
        assert late["status"] == "buffered"
        accepted.append(late)
        assert await worker.processor.run_once() == 1
        # A list is read from the replica: refused, to be asked again.
        read = await http.get("/raw_data_files", params={"executed_obs_unit_id": unit["id"]})
        assert read.status_code == 503, read.text
        assert "Retry-After" in read.headers
        held = await buffer_state(settings.redis_url, site)
        assert (held["stream"], held["awaiting_replica"]) == (0, 5)

        await asyncio.to_thread(replica_stoppable.start)
        await asyncio.to_thread(stack.wait_replica_caught_up, 60)
        settled = await worker.tracker.run_once()
        assert sorted(settled) == sorted(a["tx_id"] for a in accepted)
        held = await buffer_state(settings.redis_url, site)
        assert (held["stream"], held["overlay"], held["awaiting_replica"]) == (0, 0, 0)

        # Read back from the replica alone, and on main exactly once.
        listed = ok(await http.get("/raw_data_files", params={"executed_obs_unit_id": unit["id"]}))
        assert sorted(f["id"] for f in listed["items"]) == sorted(f["id"] for f in files)
        for u in (unit, late):
            assert ok(await http.get(f"/executed_obs_units/{u['id']}"))["id"] == u["id"]
        for a in accepted:
            assert ok(await http.get(f"/transactions/{a['tx_id']}"))["state"] == "visible"
    on_main = await fetch(
        stack.main_db.dsn(),
        "SELECT id FROM raw_data_files WHERE executed_obs_unit_id = $1",
        uuid.UUID(unit["id"]),
    )
    assert sorted(str(r["id"]) for r in on_main) == sorted(f["id"] for f in files)
    applied = await fetch(
        stack.main_db.dsn(), "SELECT count(*) AS n FROM applied_transactions WHERE site = $1", site
    )
    assert applied[0]["n"] == 5
