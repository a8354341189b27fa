"""WebSocket monitors against a real gateway: transaction states as they change, the buffer
status and transfer overview streams, authentication, slow consumers, capped lifetimes and
shutdown; and Prometheus metrics that move with the buffer."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.runtime import make_redis
from tests.integration.conftest import Tokens
from tests.support import bearer, client, serve

WAIT_S = 15.0


def ws_url(base_url: str, path: str) -> str:
    return base_url.replace("http://", "ws://", 1) + path


@asynccontextmanager
async def monitor(
    base_url: str, path: str, token: str | None = None, **options: Any
) -> AsyncIterator[ClientConnection]:
    headers = bearer(token) if token else {}
    async with connect(ws_url(base_url, path), additional_headers=headers, **options) as ws:
        yield ws


async def frame(ws: ClientConnection, timeout_s: float = WAIT_S) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
    return decoded


async def frame_where(ws: ClientConnection, predicate: Any, timeout_s: float = WAIT_S) -> Any:
    """Read frames until one matches (bounded); the ones before it are skipped."""
    async with asyncio.timeout(timeout_s):
        while True:
            got = await frame(ws, timeout_s)
            if predicate(got):
                return got


def events_in(f: dict[str, Any]) -> list[dict[str, Any]]:
    """The transaction events a frame carries (``event``: one; ``events``: several)."""
    if f["type"] == "event":
        return [f["event"]]
    if f["type"] == "events":
        events: list[dict[str, Any]] = f["events"]
        return events
    return []


async def event_where(ws: ClientConnection, predicate: Any, timeout_s: float = WAIT_S) -> Any:
    """Read events until one matches (bounded); the ones before it are skipped."""
    async with asyncio.timeout(timeout_s):
        while True:
            for event in events_in(await frame(ws, timeout_s)):
                if predicate(event):
                    return event


async def close_code(ws: ClientConnection, timeout_s: float = WAIT_S) -> int | None:
    """Read until the server closes; the code it sent."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    raise AssertionError("unreachable")


def live_settings(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(
        update={"live_status_interval_s": 0.2, "live_overview_interval_s": 0.5, **changes}
    )


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


async def test_monitors_refuse_missing_or_insufficient_credentials(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url:
        for path in ("/api/ws/transactions", "/api/ws/buffer", "/api/transfer/ws/overview"):
            async with monitor(url, path) as ws:
                assert await close_code(ws) == 4401, path
            async with monitor(url, path, "ccat_nope_nope") as ws:
                assert await close_code(ws) == 4401, path
            async with monitor(url, f"{path}?ticket=forged.ticket.value") as ws:
                assert await close_code(ws) == 4401, path
        async with monitor(url, "/api/ws/transactions", tokens.viewer) as ws:
            assert await close_code(ws) == 4403
        async with monitor(url, "/api/ws/transactions?tx_id=nope", tokens.admin) as ws:
            assert await close_code(ws) == 4422


async def test_a_ticket_opens_one_monitor_once_without_a_token_in_the_url(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.observer) as http:
        assert (await http.post("/api/ws/tickets", headers={"Authorization": ""})).status_code == (
            401
        )
        issued = (await http.post("/api/ws/tickets")).json()
        assert issued["expires_in"] == secondary_settings.ws_ticket_ttl_s
        assert tokens.observer not in issued["ticket"]
        async with monitor(url, f"/api/ws/buffer?ticket={issued['ticket']}") as ws:
            assert (await frame(ws))["type"] == "hello"
            assert (await frame(ws))["type"] == "snapshot"
        async with monitor(url, f"/api/ws/buffer?ticket={issued['ticket']}") as again:
            assert await close_code(again) == 4401
        # A ticket carries its holder's permissions, no more.
        async with client(url, tokens.viewer) as viewer:
            narrow = (await viewer.post("/api/ws/tickets")).json()["ticket"]
        async with monitor(url, f"/api/ws/buffer?ticket={narrow}") as ws:
            assert await close_code(ws) == 4403


class StalledMonitor:
    """A WebSocket client that stops reading, at the socket: client libraries keep reading
    into memory, and Linux would grow a socket's receive buffer to tens of megabytes, so
    this one speaks the protocol itself over a socket with a small fixed receive buffer."""

    def __init__(self, base_url: str, path: str, token: str) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        self.sock.settimeout(WAIT_S)
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("connection ended without a close frame")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def frames_until_close(self) -> tuple[int, int]:
        """Reads everything the server sent: (text frames, close code)."""
        texts = 0
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(self._read(2), "big")
            elif length == 127:
                length = int.from_bytes(self._read(8), "big")
            payload = self._read(length)
            opcode = first & 0x0F
            if opcode == 0x8:
                return texts, int.from_bytes(payload[:2], "big")
            texts += opcode == 0x1

    def close(self) -> None:
        self.sock.close()


async def test_a_slow_monitor_is_dropped_while_others_keep_receiving(
    secondary_settings: Settings, tokens: Tokens
) -> None:
    """Events are published straight into the site's channel (as the scripts do), large
    enough to fill the socket buffers of a monitor that stops reading (its client library
    would otherwise keep reading into memory)."""
    # Without the linger each event is one queue item: the queue's bound is what is tested.
    settings = secondary_settings.model_copy(update={"ws_queue_size": 32, "ws_linger_s": 0.0})
    keys = SiteKeys(settings.site_name)
    redis = make_redis(settings.redis_url)
    count, pad = 400, "x" * 32_000
    try:
        async with (
            serve(settings) as url,
            monitor(url, "/api/ws/transactions", tokens.observer, max_size=None) as fast,
        ):
            slow = await asyncio.to_thread(
                StalledMonitor, url, "/api/ws/transactions", tokens.observer
            )
            assert (await frame(fast))["type"] == "hello"
            received: list[str] = []

            async def read_fast() -> None:
                while len(received) < count:
                    received.extend(e["tx_id"] for e in events_in(await frame(fast)))

            reader = asyncio.create_task(read_fast())
            sent = [str(uuid.uuid4()) for _ in range(count)]
            for i in range(0, count, 10):
                for tx_id in sent[i : i + 10]:
                    event = {"tx_id": tx_id, "state": "buffered", "pad": pad}
                    await redis.publish(keys.events, orjson.dumps(event))
                await asyncio.sleep(0.02)
            await asyncio.wait_for(reader, WAIT_S)
            assert received == sent
            # The slow one was cut off with 1013, after the frames its buffers could hold.
            texts, code = await asyncio.to_thread(slow.frames_until_close)
            slow.close()
            assert code == 1013
            assert 1 <= texts < count
    finally:
        await redis.aclose()


async def test_a_monitor_connection_lives_at_most_its_lifetime(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    settings = secondary_settings.model_copy(update={"ws_max_lifetime_s": 1.0})
    async with serve(settings) as url, monitor(url, "/api/ws/transactions", tokens.admin) as ws:
        assert (await frame(ws))["lifetime_s"] == 1.0
        assert await close_code(ws, timeout_s=10) == 4000


async def test_monitors_are_closed_cleanly_when_the_gateway_stops(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url:
        ws = await connect(
            ws_url(url, "/api/ws/transactions"), additional_headers=bearer(tokens.admin)
        )
        assert (await frame(ws))["type"] == "hello"
    # The server has stopped: the monitor got a close frame (service restart), not a reset.
    assert await close_code(ws, timeout_s=5) in (1001, 1012)


async def test_metrics_move_with_the_buffer_and_the_requests(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    site = secondary_settings.site_name

    def value(text: str, name: str, labels: str = f'site="{site}"') -> float:
        found = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
        assert found, f"{name}{{{labels}}} missing"
        return float(found.group(1))

    async with (
        serve(secondary_settings) as url,
        client(url, tokens.observer) as http,
        client(url) as anonymous,
    ):
        assert (await anonymous.get("/metrics")).status_code == 401
        before = (await http.get("/metrics")).text
        assert value(before, "ccat_buffer_depth") == 0
        async with client(url, tokens.operator) as writer:
            for _ in range(2):
                await writer.post("/executed_obs_units/start", json={"obs_unit_id": 1})
        await asyncio.sleep(1.1)  # the status sample is cached for up to a second
        during = (await http.get("/metrics")).text
        assert value(during, "ccat_buffer_depth") == 2
        assert value(during, "ccat_transactions_accepted_total") == 2
        assert value(during, "ccat_buffer_accept_rate") > 0
        assert re.search(
            r'^ccat_http_request_duration_seconds_count\{method="POST",'
            r'route="/executed_obs_units/start",status="201"\} [1-9]',
            during,
            re.M,
        ), "request latency by route missing"
        await worker.processor.run_once()
        stack.wait_replica_caught_up()
        await worker.tracker.run_once()
        await asyncio.sleep(1.1)
        after = (await http.get("/metrics")).text
        assert value(after, "ccat_buffer_depth") == 0
        assert value(after, "ccat_transactions_applied_total") == 2
        assert value(after, "ccat_transactions_visible_total") == 2
        assert value(after, "ccat_replay_batches_total") == 1
        assert value(after, "ccat_replica_apply_lag_bytes") == 0
        assert value(after, "ccat_processor_state", f'site="{site}",state="idle"') == 1
        assert re.search(r"^ccat_replay_batch_transactions_count [1-9]", after, re.M)
        async with monitor(url, "/api/ws/buffer", tokens.observer) as ws:
            assert (await frame(ws))["type"] == "hello"
            watched = (await http.get("/metrics")).text
            assert value(watched, "ccat_websocket_connections", 'stream="buffer"') == 1
