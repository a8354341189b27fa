"""Who may open a WebSocket monitor: API tokens and their roles, single-use tickets that keep
the token out of the URL, and a ticket whose token was revoked since."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from websockets.exceptions import ConnectionClosed

from ccat_api.auth.tokens import issue_service_token, revoke_token
from ccat_api.config import Settings
from ccat_api.db.engines import PrimaryDatabase, make_engine
from ccat_api.db.models import Role
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.integration.monitors import WAIT_S, close_code, frame, monitor
from tests.support import client, serve


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
