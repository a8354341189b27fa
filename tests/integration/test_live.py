"""WebSocket monitors against a real gateway: transaction states as they change, the buffer
status and transfer overview streams. Their authentication is in test_live_auth.py, slow
consumers, capped lifetimes and shutdown in test_live_connections.py, and Prometheus
metrics that move with the buffer in test_live_metrics.py."""

from __future__ import annotations

from typing import Any

import pytest

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.integration.monitors import event_where, frame, frame_where, live_settings, monitor
from tests.support import client, serve


async def test_transaction_stream_shows_each_state_of_a_write(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with (
        serve(secondary_settings) as url,
        client(url, tokens.operator) as http,
        monitor(url, "/api/ws/transactions", tokens.observer) as everything,
    ):
        hello = await frame(everything)
        assert (hello["type"], hello["site"], hello["events"]) == (
            "hello",
            secondary_settings.site_name,
            True,
        )
        write = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()
        tx_id = write["tx_id"]

        def of_tx(state: str) -> Any:
            return lambda e: e["tx_id"] == tx_id and e["state"] == state

        buffered = await event_where(everything, of_tx("buffered"))
        assert buffered["seq"] >= 1
        async with monitor(url, f"/api/ws/transactions?tx_id={tx_id}", tokens.observer) as one:
            assert (await frame(one))["type"] == "hello"
            snapshot = await frame(one)
            assert (snapshot["type"], snapshot["tx_id"], snapshot["state"]) == (
                "snapshot",
                tx_id,
                "buffered",
            )
            assert await worker.processor.run_once() == 1
            applied = await event_where(one, of_tx("applied"))
            assert applied["lsn"] > 0
            stack.wait_replica_caught_up()
            await worker.tracker.run_once()
            visible = await event_where(one, of_tx("visible"))
            assert visible["lsn"] >= applied["lsn"]
            # The single-transaction stream carries no one else's events.
            other = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()
            seen: list[tuple[str, str]] = []

            def note(e: dict[str, Any]) -> bool:
                seen.append((e["tx_id"], e["state"]))
                return bool(e["tx_id"] == other["tx_id"])

            await event_where(everything, note)
            with pytest.raises(TimeoutError):
                await frame(one, timeout_s=0.5)
        # The site-wide stream carried the same states, in order.
        assert seen == [(tx_id, "applied"), (tx_id, "visible"), (other["tx_id"], "buffered")]


async def test_a_replayed_batch_reaches_a_monitor_as_one_frame(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with (
        serve(secondary_settings) as url,
        client(url, tokens.operator) as http,
        monitor(url, "/api/ws/transactions", tokens.observer) as ws,
    ):
        assert (await frame(ws))["type"] == "hello"
        written = [
            (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()["tx_id"]
            for _ in range(5)
        ]
        await event_where(ws, lambda e: e["tx_id"] == written[-1])  # all five buffered
        assert await worker.processor.run_once() == 5
        batch = await frame(ws)
        assert batch["type"] == "events"
        assert [(e["tx_id"], e["state"]) for e in batch["events"]] == [
            (tx, "applied") for tx in written
        ]
        assert len({e["lsn"] for e in batch["events"]}) == 1


async def test_buffer_stream_reports_depth_rates_and_replica_lag(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    settings = live_settings(secondary_settings)
    async with (
        serve(settings) as url,
        client(url, tokens.operator) as http,
        monitor(url, "/api/ws/buffer", tokens.observer) as ws,
    ):
        assert (await frame(ws))["type"] == "hello"
        first = await frame(ws)
        assert first["type"] == "snapshot"
        assert first["data"]["buffer"]["depth"] == 0
        assert first["data"]["replica"]["ok"] is True
        for _ in range(3):
            await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
        deep = await frame_where(ws, lambda f: f["data"]["buffer"]["depth"] == 3)
        assert deep["type"] == "update"
        assert deep["data"]["buffer"]["oldest_pending_age_s"] >= 0
        assert deep["data"]["counters"]["accepted"] == 3
        stack.replica.psql("SELECT pg_wal_replay_pause()")
        try:
            await worker.processor.run_once()
            lagging = await frame_where(
                ws,
                lambda f: (
                    f["data"]["buffer"]["depth"] == 0
                    and (f["data"]["replica"]["apply_lag_bytes"] or 0) > 0
                ),
            )
            assert lagging["data"]["buffer"]["awaiting_replica"] == 3
            assert lagging["data"]["buffer"]["drain_rate_tx_s"] > 0
            assert lagging["data"]["replica"]["receive_lag_bytes"] == 0
            assert lagging["data"]["replica"]["wan_delay_s"] is not None
        finally:
            stack.replica.psql("SELECT pg_wal_replay_resume()")
        stack.wait_replica_caught_up()
        await worker.tracker.run_once()
        settled = await frame_where(ws, lambda f: f["data"]["buffer"]["awaiting_replica"] == 0)
        assert settled["data"]["replica"]["apply_lag_bytes"] == 0
        assert settled["data"]["counters"]["visible"] == 3
        assert settled["data"]["buffer"]["estimated_drain_s"] == 0


async def test_transfer_overview_stream_sends_a_snapshot_then_changes(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    settings = live_settings(secondary_settings)
    async with (
        serve(settings) as url,
        client(url, tokens.service) as http,
        monitor(url, "/api/transfer/ws/overview", tokens.viewer) as ws,
    ):
        assert (await frame(ws))["type"] == "hello"
        snapshot = await frame(ws)
        assert snapshot["type"] == "snapshot"
        before = snapshot["data"]["packages_by_status"]["building"]
        eou = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()
        package = await http.post(
            "/raw_data_package",
            json={"name": f"live-{eou['id']}", "executed_obs_unit_id": eou["id"],
                  "instrument_module_id": 1},
        )  # fmt: skip
        assert package.status_code == 201, package.text
        update = await frame_where(
            ws, lambda f: f["data"]["packages_by_status"]["building"] == before + 1
        )
        assert update["type"] == "update"
