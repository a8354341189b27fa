"""A WebSocket monitor's connection: a slow consumer is dropped while others keep receiving,
a monitor lives at most its lifetime (a session's: what is left of its access token),
and the gateway stopping closes monitors cleanly."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import uuid

import orjson
from websockets.asyncio.client import connect

from ccat_api.auth.sessions import SessionSigner, start_session
from ccat_api.buffering.keys import SiteKeys
from ccat_api.config import Settings
from ccat_api.db.engines import PrimaryDatabase, make_engine
from ccat_api.devstack.stack import Stack
from ccat_api.runtime import make_redis
from tests.integration.conftest import Tokens
from tests.integration.monitors import WAIT_S, close_code, events_in, frame, monitor, ws_url
from tests.support import bearer, client, fetchval, serve


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
