"""The SDK against a real gateway (real PostgreSQL, replica and Redis; no mocks): a write
whose answer is lost is sent again and buffered once, 503s are waited out, retries are
bounded, a refusal is not retried, wait_visible follows the pipeline to visible, and a
physical copy written at a secondary site reads back, buffered and then replicated."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from ccat_api.app import create_app
from ccat_api.buffering.worker import SiteWorker
from ccat_api.client import (
    ApiError,
    AsyncClient,
    Client,
    ConnectionFailed,
    RetryEvent,
    RetryPolicy,
    TransactionFailed,
    WriteResult,
)
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.lossy_proxy import LossyProxy
from tests.support import buffer_state, eventually, refused_on_main, serve, serve_asgi

START = "/executed_obs_units/start"
# Unit-test speed for backoff; the integration is in what is retried, not how long it waits.
QUICK = RetryPolicy(max_attempts=5, backoff_initial_s=0.05, backoff_max_s=0.2)


@dataclass
class RecordingApp:
    """The gateway, noting each request as it arrives: what the server saw."""

    app: ASGIApp
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            key = dict(scope["headers"]).get(b"idempotency-key")
            self.seen.append((scope["method"], scope["path"], key.decode() if key else None))
        await self.app(scope, receive, send)

    def keys_sent_to(self, path: str) -> list[str | None]:
        return [key for _, p, key in self.seen if p == path]


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_write_whose_answer_is_lost_is_sent_again_and_buffered_once(
    tokens: Tokens, secondary_settings: Settings, kind: str
) -> None:
    gateway = RecordingApp(create_app(secondary_settings))
    async with serve_asgi(gateway) as url, LossyProxy(*_host_port(url), cut_first=1) as proxy:
        body = {"obs_unit_id": 1, "instrument_module_id": 2, "conditions": {"tau": 0.05}}
        if kind == "sync":

            def start() -> WriteResult:
                with Client(proxy.url, tokens.service, retry=QUICK) as sdk:
                    return sdk.start_executed_obs_unit(body)

            result = await asyncio.to_thread(start)
        else:
            async with AsyncClient(proxy.url, tokens.service, retry=QUICK) as sdk:
                result = await sdk.start_executed_obs_unit(body)

        assert proxy.cuts == 1
        assert result.attempts == 2
        assert result.status == "buffered"
        assert gateway.keys_sent_to(START) == [result.idempotency_key] * 2
        held = await buffer_state(secondary_settings.redis_url, secondary_settings.site_name)
        assert held["stream"] == 1
        async with AsyncClient(url, tokens.service) as direct:
            unit = await direct.get_executed_obs_unit(result.id)
            assert (unit.id, unit.status, unit.conditions) == (result.id, "running", {"tau": 0.05})
            assert (await direct.get_transaction(result.tx_id)).state == "buffered"


async def test_retries_are_bounded_and_give_up_with_the_key_to_resend(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    gateway = RecordingApp(create_app(secondary_settings))
    policy = RetryPolicy(max_attempts=3, backoff_initial_s=0.05, backoff_max_s=0.1)
    async with (
        serve_asgi(gateway) as url,
        LossyProxy(*_host_port(url), cut_first=1000) as proxy,
        AsyncClient(proxy.url, tokens.service, retry=policy) as sdk,
    ):
        with pytest.raises(ConnectionFailed, match="no answer after 3 attempts") as raised:
            await sdk.start_executed_obs_unit({"obs_unit_id": 1})
        failure = raised.value
        assert proxy.cuts == 3
        assert gateway.keys_sent_to(START) == [failure.idempotency_key] * 3
        # The server took the first attempt; the two others replayed its answer.
        held = await buffer_state(secondary_settings.redis_url, secondary_settings.site_name)
        assert held["stream"] == 1
        async with AsyncClient(url, tokens.service) as direct:
            again = await direct.start_executed_obs_unit(
                {"obs_unit_id": 1}, idempotency_key=failure.idempotency_key
            )
        assert again.attempts == 1
        held = await buffer_state(secondary_settings.redis_url, secondary_settings.site_name)
        assert held["stream"] == 1


async def test_a_503_is_retried_after_retry_after_until_the_buffer_is_back(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    events: list[RetryEvent] = []
    # Backoff alone would wait 0.01 s; every 503 waiting exactly the cap shows that the
    # server's Retry-After (5 s) was read, and capped.
    policy = RetryPolicy(
        max_attempts=300, backoff_initial_s=0.01, backoff_jitter_s=0, retry_after_cap_s=0.2
    )
    async with (
        serve(secondary_settings) as url,
        AsyncClient(url, tokens.service, retry=policy, on_retry=events.append) as sdk,
    ):
        await asyncio.to_thread(stack.redis.kill)
        try:
            write = asyncio.create_task(sdk.start_executed_obs_unit({"obs_unit_id": 1}))

            async def refused() -> bool:
                return any(e.status_code == 503 for e in events)

            await eventually(refused, timeout_s=30)
        finally:
            await asyncio.to_thread(stack.redis.start)
        result = await asyncio.wait_for(write, 60)
        assert result.attempts >= 2
        assert {(e.status_code, e.delay_s) for e in events} == {(503, 0.2)}
        held = await buffer_state(secondary_settings.redis_url, secondary_settings.site_name)
        assert held["stream"] == 1
        assert (await sdk.get_executed_obs_unit(result.id)).id == result.id


async def test_a_refused_write_is_not_retried_and_names_the_field(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    gateway = RecordingApp(create_app(secondary_settings))
    async with serve_asgi(gateway) as url, AsyncClient(url, tokens.service, retry=QUICK) as sdk:
        with pytest.raises(ApiError) as raised:
            await sdk.start_executed_obs_unit({"obs_unit_id": 2_000_000_000})
        error = raised.value
        assert (error.status_code, error.field, error.code) == (
            422,
            "obs_unit_id",
            "invalid_reference",
        )
        assert "does not exist" in error.detail
        assert len(gateway.keys_sent_to(START)) == 1
        held = await buffer_state(secondary_settings.redis_url, secondary_settings.site_name)
        assert held["stream"] == 0


async def test_wait_visible_returns_once_the_processor_and_tracker_have_run(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    gateway = RecordingApp(create_app(secondary_settings))
    async with serve_asgi(gateway) as url, AsyncClient(url, tokens.service) as sdk:
        result = await sdk.start_executed_obs_unit({"obs_unit_id": 1})
        polled = f"/transactions/{result.tx_id}"

        async def pipeline() -> None:
            async def waiting() -> bool:
                return len(gateway.keys_sent_to(polled)) >= 2

            await eventually(waiting)  # wait_visible is polling a buffered transaction
            assert await worker.processor.run_once() == 1
            await asyncio.to_thread(stack.wait_replica_caught_up)
            assert await worker.tracker.run_once() == [str(result.tx_id)]

        state, _ = await asyncio.gather(
            sdk.wait_visible(result, timeout_s=60, poll_interval_s=0.05), pipeline()
        )
        assert state.state == "visible"
        assert state.lsn is not None
        assert state.visible_at is not None


async def test_wait_visible_raises_when_the_write_becomes_a_dead_letter(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    async with serve(secondary_settings) as url, AsyncClient(url, tokens.service) as sdk:
        result = await sdk.start_executed_obs_unit({"obs_unit_id": 1})
        with refused_on_main(stack, "executed_obs_units", f"id <> '{result.id}'::uuid"):
            assert await worker.processor.run_once() == 1
        with pytest.raises(TransactionFailed, match="failed") as raised:
            await sdk.wait_visible(result.tx_id, timeout_s=30)
        assert raised.value.state is not None
        async with AsyncClient(url, tokens.admin) as admin:
            dead = await admin.list_dead_letters()
            assert [t.tx_id for t in dead.items] == [str(result.tx_id)]
            await admin.discard_transaction(result.tx_id)
            assert (await admin.get_transaction(result.tx_id)).state == "discarded"


async def test_at_main_a_write_is_applied_and_wait_visible_is_done_at_once(
    tokens: Tokens, main_settings: Settings
) -> None:
    async with serve(main_settings) as url, AsyncClient(url, tokens.service) as sdk:
        result = await sdk.start_executed_obs_unit({"obs_unit_id": 1})
        assert result.status == "applied"
        state = await sdk.wait_visible(result.tx_id, timeout_s=30)
        assert state.state == "applied"
        assert (await sdk.site_info()).site_type == "main"
        finished = await sdk.finish_executed_obs_unit(result.id, {"status": "success"})
        assert finished.http_status == 200
        assert (await sdk.get_executed_obs_unit(result.id)).status == "success"


async def test_a_copy_written_through_the_sdk_at_a_secondary_site_reads_back(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    site = secondary_settings.site_name
    files = [
        {"name": f"f{i}", "relative_path": f"{site}/f{i}.fits", "size_bytes": 1000,
         "checksum": "sha256:0011223344556677", "file_type": "fits", "instrument_module_id": 1}
        for i in range(2)
    ]  # fmt: skip
    async with serve(secondary_settings) as url, AsyncClient(url, tokens.service) as sdk:
        stack.wan.down()  # buffered writes and merged reads need nothing from main
        unit = await sdk.start_executed_obs_unit({"obs_unit_id": 1})
        package = await sdk.create_package(
            {"name": f"pkg-{site}", "executed_obs_unit_id": unit.id, "instrument_module_id": 1,
             "files": files}
        )  # fmt: skip
        await sdk.finalize_package(package.id, checksum="md5:feedfeed")
        transfer = await sdk.start_transfer({"raw_data_package_id": package.id, "route_id": 1})
        await sdk.log_transfer(transfer.id, {"level": "warning", "message": "slow link"})
        copy = await sdk.add_copy(
            {"raw_data_package_id": package.id, "data_location_id": 2, "path": f"/buf/{site}"}
        )
        assert (copy.http_status, copy.status) == (201, "buffered")
        verified = await sdk.update_copy(copy.id, {"status": "verified", "checksum": "md5:ab12"})
        assert (verified.http_status, verified.id) == (200, copy.id)
        assert verified.idempotency_key != copy.idempotency_key
        held = await buffer_state(secondary_settings.redis_url, site)
        assert held["stream"] == 7

        async def read_back() -> None:
            got = await sdk.get_copy(copy.id)
            assert (got.raw_data_package_id, got.data_location_id, got.path) == (
                package.id, 2, f"/buf/{site}",
            )  # fmt: skip
            assert (got.status, got.checksum) == ("verified", "md5:ab12")
            listed = await sdk.list_copies(raw_data_package_id=package.id)
            assert [(c.id, c.status) for c in listed.items] == [(copy.id, "verified")]
            assert (
                await sdk.list_copies(raw_data_package_id=package.id, data_location_id=1)
            ).total == 0
            moving = await sdk.list_packages(executed_obs_unit_id=unit.id, status="transferring")
            assert [p.id for p in moving.items] == [package.id]
            other = await sdk.list_packages(
                executed_obs_unit_id=unit.id, status=["building", "complete"]
            )
            assert other.items == []
            pending = await sdk.list_transfers(raw_data_package_id=package.id, status=["pending"])
            assert [(t.id, t.route_id) for t in pending.items] == [(transfer.id, 1)]
            logs = await sdk.list_transfer_logs(transfer.id)
            assert [(line.level, line.message) for line in logs.items] == [("warning", "slow link")]
            one_file = await sdk.get_raw_data_file(package.ids[1])
            assert (one_file.raw_data_package_id, one_file.name) == (package.id, "f0")

        await read_back()  # from the buffer, main unreachable
        stack.wan.up()
        assert await worker.processor.run_once() == 7
        await asyncio.to_thread(stack.wait_replica_caught_up)
        assert len(await worker.tracker.run_once()) == 7
        await read_back()  # from the replica, the buffer emptied
        held = await buffer_state(secondary_settings.redis_url, site)
        assert (held["stream"], held["overlay"]) == (0, 0)
