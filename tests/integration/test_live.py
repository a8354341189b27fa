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

from ccat_api.auth.sessions import SessionSigner, start_session
from ccat_api.auth.tokens import issue_service_token, revoke_token
from ccat_api.buffering.keys import SiteKeys
from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.db.engines import PrimaryDatabase, make_engine
from ccat_api.db.models import Role
from ccat_api.devstack.stack import Stack
from ccat_api.metrics import REPLAY_REGISTRY
from ccat_api.runtime import build_worker, make_redis
from tests.integration.conftest import Tokens
from tests.support import bearer, client, eventually, fetchval, refused_on_main, serve

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


def replay_sample(name: str) -> float:
    """A processor histogram's sample as this process's in-process processors recorded it."""
    return REPLAY_REGISTRY.get_sample_value(name) or 0.0


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
        # Give or take 10%, so that monitors which connected together reconnect apart.
        lifetime_s = (await frame(ws))["lifetime_s"]
        assert 0.9 <= lifetime_s <= 1.1
        assert await close_code(ws, timeout_s=10) == 4000


async def test_a_session_monitor_lives_no_longer_than_its_access_token_remains_valid(
    stack: Stack, secondary_settings: Settings
) -> None:
    # Long enough that a gateway starting on a loaded machine still finds the token valid,
    # short enough to watch the monitors closed at its expiry.
    ttl_s = 8
    signer = SessionSigner(secondary_settings.session_secret, access_ttl_s=ttl_s)
    user_id = await fetchval(stack.main_db.dsn(), "SELECT id FROM users WHERE login = 'test-admin'")
    db = PrimaryDatabase(
        make_engine(stack.main_db.url(), pool_size=1, connect_timeout_s=5, application_name="t")
    )
    try:
        session = await start_session(db, signer, user_id, refresh_ttl_s=60)
    finally:
        await db.dispose()
    await asyncio.to_thread(stack.wait_replica_caught_up)
    await asyncio.sleep(2)  # part of the token's life is gone before any monitor opens
    async with serve(secondary_settings) as url, client(url, session.access_token) as http:
        ticket = (await http.post("/api/ws/tickets")).json()["ticket"]
        async with (
            monitor(url, "/api/ws/buffer", session.access_token) as by_header,
            monitor(url, f"/api/ws/transactions?ticket={ticket}") as by_ticket,
        ):
            for ws in (by_header, by_ticket):
                # What is left of the token, not its whole lifetime from now.
                assert 0 < (await frame(ws))["lifetime_s"] <= ttl_s - 2
            for ws in (by_header, by_ticket):
                assert await close_code(ws, timeout_s=ttl_s) == 4000


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
        batches_before = replay_sample("ccat_replay_batch_transactions_count")
        replayed_before = replay_sample("ccat_replay_batch_transactions_sum")
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
        assert value(after, "ccat_redis_up") == 1
        # The processor measured its batch in its own registry; this gateway runs none, so it
        # shows no processor histograms (they would sit at zero forever).
        assert replay_sample("ccat_replay_batch_transactions_count") == batches_before + 1
        assert replay_sample("ccat_replay_batch_transactions_sum") == replayed_before + 2
        assert not re.search(
            r"^ccat_replay_batch_(transactions|duration_seconds)_count", after, re.M
        )
        async with monitor(url, "/api/ws/buffer", tokens.observer) as ws:
            assert (await frame(ws))["type"] == "hello"
            watched = (await http.get("/metrics")).text
            assert value(watched, "ccat_websocket_connections", 'stream="buffer"') == 1


# --- metrics: what each figure says, and what a scrape says when something is down -----------


def metric(text: str, name: str, labels: str | None = None) -> float | None:
    """A sample of the exposition ``text``, None when it is absent."""
    selector = re.escape(name) + (rf"\{{{re.escape(labels)}\}}" if labels else "")
    found = re.search(rf"^{selector} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def site_metric(text: str, name: str, site: str) -> float:
    value = metric(text, name, f'site="{site}"')
    assert value is not None, f"{name} missing"
    return value


async def test_metrics_show_dead_letters_pending_age_and_the_drain_estimate(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, worker: SiteWorker
) -> None:
    settings = live_settings(secondary_settings)  # a scrape's sample is at most 0.1 s old
    site = settings.site_name
    async with (
        serve(settings) as url,
        client(url, tokens.observer) as http,
        client(url, tokens.operator) as writer,
    ):

        async def scrape() -> str:
            await asyncio.sleep(0.15)
            return (await http.get("/metrics")).text

        async def write() -> dict[str, Any]:
            answer = await writer.post("/executed_obs_units/start", json={"obs_unit_id": 1})
            assert answer.status_code == 201, answer.text
            written: dict[str, Any] = answer.json()
            return written

        doomed, _ = await write(), await write()
        await scrape()  # rates are measured from this sample on
        await asyncio.sleep(0.5)
        stalled = await scrape()
        assert site_metric(stalled, "ccat_buffer_depth", site) == 2
        assert site_metric(stalled, "ccat_buffer_oldest_pending_age_seconds", site) >= 0.5
        assert site_metric(stalled, "ccat_buffer_drain_rate", site) == 0
        assert site_metric(stalled, "ccat_dead_letters", site) == 0
        # Work waits and nothing drains: no estimate, rather than a made-up one.
        assert metric(stalled, "ccat_buffer_estimated_drain_seconds", f'site="{site}"') is None

        with refused_on_main(stack, "executed_obs_units", f"id <> '{doomed['id']}'::uuid"):
            assert await worker.processor.run_once() == 2
        await write()
        draining = await scrape()
        assert site_metric(draining, "ccat_dead_letters", site) == 1
        assert site_metric(draining, "ccat_buffer_depth", site) == 1
        drain_rate = site_metric(draining, "ccat_buffer_drain_rate", site)
        assert drain_rate > 0
        assert site_metric(draining, "ccat_buffer_estimated_drain_seconds", site) == (
            pytest.approx(1 / drain_rate, abs=0.1)
        )
        # The oldest waiting write is now the one just made.
        assert site_metric(draining, "ccat_buffer_oldest_pending_age_seconds", site) < (
            site_metric(stalled, "ccat_buffer_oldest_pending_age_seconds", site)
        )

        assert await worker.processor.run_once() == 1
        drained = await scrape()
        assert site_metric(drained, "ccat_buffer_depth", site) == 0
        assert site_metric(drained, "ccat_buffer_estimated_drain_seconds", site) == 0
        assert site_metric(drained, "ccat_buffer_oldest_pending_age_seconds", site) == 0
        assert site_metric(drained, "ccat_dead_letters", site) == 1


async def test_replica_receive_lag_grows_while_replication_cannot_cross_the_wan(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    """The replica streams from main through the WAN simulator. This site's gateway and
    processor reach main directly, so with the WAN down main's position is still known while
    the replica's stays put: what main wrote since is receive lag, and nothing waits to be
    applied (apply lag 0, however old the last replayed commit is)."""
    settings = live_settings(secondary_settings).model_copy(
        update={"main_db_url": stack.main_db.url()}
    )
    site = settings.site_name
    redis = make_redis(settings.redis_url)
    direct = build_worker(settings, redis)
    try:
        async with serve(settings) as url, client(url, tokens.observer) as http:
            async with client(url, tokens.operator) as writer:
                answer = await writer.post("/executed_obs_units/start", json={"obs_unit_id": 1})
                assert answer.status_code == 201, answer.text

            async def scrape() -> str:
                await asyncio.sleep(0.15)
                return (await http.get("/metrics")).text

            stack.wan.down()
            assert await direct.processor.run_once() == 1  # on main, across no WAN

            async def lagging() -> str:
                """The scrape once it shows receive lag and no apply lag, else ""."""
                text = await scrape()
                lag = metric(text, "ccat_replica_receive_lag_bytes", f'site="{site}"')
                applied = metric(text, "ccat_replica_apply_lag_bytes", f'site="{site}"')
                return text if (lag or 0) > 0 and applied == 0 else ""

            text = await eventually(lagging, timeout_s=WAIT_S)
            assert site_metric(text, "ccat_replica_apply_lag_seconds", site) == 0
            assert site_metric(text, "ccat_replica_up", site) == 1

            stack.wan.up()

            async def caught_up() -> bool:
                text = await scrape()
                return metric(text, "ccat_replica_receive_lag_bytes", f'site="{site}"') == 0

            await eventually(caught_up, timeout_s=WAIT_S)
    finally:
        stack.wan.up()
        await direct.processor.close()
        await direct.tracker.close()
        await redis.aclose()


async def test_a_gateway_that_runs_the_processor_exposes_its_replay_histograms(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    settings = secondary_settings.model_copy(update={"run_processor": True})
    async with serve(settings) as url, client(url, tokens.admin) as http:
        before = (await http.get("/metrics")).text
        count = metric(before, "ccat_replay_batch_transactions_count")
        replayed = metric(before, "ccat_replay_batch_transactions_sum")
        assert count is not None
        assert replayed is not None
        assert metric(before, "ccat_replay_batch_duration_seconds_count") == count
        written = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()

        async def applied() -> bool:
            state = (await http.get(f"/transactions/{written['tx_id']}")).json()["state"]
            return state in ("applied", "visible")

        await eventually(applied, timeout_s=WAIT_S)
        after = (await http.get("/metrics")).text
        assert metric(after, "ccat_replay_batch_transactions_sum") == replayed + 1
        assert (metric(after, "ccat_replay_batch_duration_seconds_count") or 0) > count


async def test_with_redis_down_metrics_and_status_say_the_buffer_is_unavailable(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    settings = live_settings(secondary_settings)
    site = settings.site_name
    async with (
        serve(settings) as url,
        client(url, tokens.observer) as http,
        monitor(url, "/api/ws/buffer", tokens.observer) as ws,
    ):
        assert (await frame(ws))["type"] == "hello"
        assert (await frame(ws))["data"]["redis"] == {"ok": True, "error": None}
        assert (await http.get("/api/site/status")).status_code == 200
        ticket = (await http.post("/api/ws/tickets")).json()["ticket"]
        await asyncio.to_thread(stack.redis.kill)
        try:
            # A ticket's single use is kept in Redis: it cannot be redeemed now, and the
            # monitor is told to come back later (1013), not that its credential is bad.
            async with monitor(url, f"/api/ws/buffer?ticket={ticket}") as refused:
                assert await close_code(refused) == 1013
            await asyncio.sleep(0.15)  # past the cached sample
            scraped = await http.get("/metrics")
            assert scraped.status_code == 200, scraped.text
            assert site_metric(scraped.text, "ccat_redis_up", site) == 0
            assert site_metric(scraped.text, "ccat_replica_up", site) == 1
            # This process's own metrics are there, exactly when they matter.
            served = metric(
                scraped.text,
                "ccat_http_request_duration_seconds_count",
                'method="GET",route="/api/site/status",status="200"',
            )
            assert (served or 0) >= 1
            assert metric(scraped.text, "ccat_websocket_connections", 'stream="buffer"') == 1
            # No buffer figure rather than a stale or zero one.
            assert metric(scraped.text, "ccat_buffer_depth", f'site="{site}"') is None
            answer = await http.get("/api/site/status")
            assert answer.status_code == 200, answer.text
            status = answer.json()
            assert status["buffer"] is None
            assert status["processor"] is None
            assert status["redis"]["ok"] is False
            assert status["redis"]["error"]
            assert status["replica"]["ok"] is True
            # Monitors are told too, instead of keeping the last figures.
            down = await frame_where(
                ws, lambda f: f["type"] == "update" and f["data"]["redis"]["ok"] is False
            )
            assert down["data"]["buffer"] is None
        finally:
            await asyncio.to_thread(stack.redis.start)
        back = await frame_where(
            ws, lambda f: f["type"] == "update" and f["data"]["redis"]["ok"] is True
        )
        assert back["data"]["buffer"]["depth"] == 0
        await asyncio.sleep(0.15)
        assert site_metric((await http.get("/metrics")).text, "ccat_redis_up", site) == 1


async def test_a_ticket_is_refused_once_its_api_token_is_revoked(
    stack: Stack, secondary_settings: Settings
) -> None:
    db = PrimaryDatabase(
        make_engine(stack.main_db.url(), pool_size=1, connect_timeout_s=5, application_name="t")
    )
    try:
        issued = await issue_service_token(
            db, f"ticket-{uuid.uuid4().hex[:8]}", Role.OBSERVER.value
        )
        stack.wait_replica_caught_up()
        async with serve(secondary_settings) as url, client(url, issued.plaintext) as http:
            used, kept = [(await http.post("/api/ws/tickets")).json()["ticket"] for _ in range(2)]
            async with monitor(url, f"/api/ws/buffer?ticket={used}") as ws:
                assert (await frame(ws))["type"] == "hello"
            assert await revoke_token(db, issued.token_id)
            stack.wait_replica_caught_up()
            async with monitor(url, f"/api/ws/buffer?ticket={kept}") as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), WAIT_S)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4401
            assert "revoked" in closed.value.rcvd.reason
    finally:
        await db.dispose()
