"""Token and account management through the API, token secrets kept secret, last-used times
written in the background, and what happens to non-buffered writes while main is away."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import client, eventually, fetchval, serve


async def test_a_user_creates_lists_uses_and_revokes_their_own_token(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        created = await http.post(
            "/tokens", json={"name": "read-only laptop", "scopes": ["read:observations"]}
        )
        assert created.status_code == 201, created.text
        issued = created.json()
        assert issued["token"].startswith(f"ccat_{issued['prefix']}_")
        stack.wait_replica_caught_up()
        listed = (await http.get("/tokens")).json()
        mine = {t["id"]: t for t in listed}
        assert mine[issued["id"]]["scopes"] == ["read:observations"]
        assert "token" not in mine[issued["id"]]
        async with client(url, issued["token"]) as laptop:
            assert (await laptop.get("/obs_units")).status_code == 200
            denied = await laptop.post("/executed_obs_units/start", json={"obs_unit_id": 1})
            assert denied.status_code == 403
            # A scoped token can only mint tokens within its own scopes.
            wider = await laptop.post(
                "/tokens", json={"name": "x", "scopes": ["write:observations"]}
            )
            assert wider.status_code == 403  # it lacks manage:account altogether
        assert (await http.delete(f"/tokens/{issued['id']}")).status_code == 204
        stack.wait_replica_caught_up()
        async with client(url, issued["token"]) as laptop:
            refused = await laptop.get("/obs_units")
            assert refused.status_code == 401
            assert "revoked" in refused.json()["detail"]


async def test_scopes_beyond_the_creators_permissions_are_refused(
    tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        r = await http.post("/tokens", json={"name": "x", "scopes": ["manage:users"]})
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "scopes"
        unknown = await http.post("/tokens", json={"name": "x", "scopes": ["fly:telescope"]})
        assert unknown.status_code == 422
        assert unknown.json()["field"].startswith("scopes")


async def test_only_admins_see_and_revoke_everyones_tokens(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    async with serve(secondary_settings) as url:
        async with client(url, tokens.operator) as operator:
            mine = (await operator.post("/tokens", json={"name": "victim"})).json()
        stack.wait_replica_caught_up()
        async with client(url, tokens.observer) as observer:
            assert (await observer.get("/admin/tokens")).status_code == 403
            assert (await observer.delete(f"/tokens/{mine['id']}")).status_code == 404
        async with client(url, tokens.admin) as admin:
            everyone = (await admin.get("/admin/tokens")).json()
            assert mine["id"] in {t["id"] for t in everyone}
            assert (await admin.delete(f"/tokens/{mine['id']}")).status_code == 204


async def test_admin_makes_a_service_account_gives_it_a_token_and_disables_it(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    login = f"daq-{secondary_settings.site_name}"
    async with serve(secondary_settings) as url, client(url, tokens.admin) as admin:
        account = await admin.post("/users", json={"login": login, "role": "service"})
        assert account.status_code == 201, account.text
        again = await admin.post("/users", json={"login": login, "role": "service"})
        assert again.status_code == 409
        bad_role = await admin.post("/users", json={"login": login + "x", "role": "wizard"})
        assert bad_role.status_code == 422
        assert bad_role.json()["field"] == "role"
        user_id = account.json()["id"]
        token = (await admin.post(f"/users/{user_id}/tokens", json={"name": "daq"})).json()
        stack.wait_replica_caught_up()
        async with client(url, token["token"]) as daq:
            write = await daq.post("/executed_obs_units/start", json={"obs_unit_id": 1})
            assert write.status_code == 201, write.text
            assert (await daq.get("/users")).status_code == 403
            disabled = await admin.patch(f"/users/{user_id}", json={"active": False})
            assert disabled.json()["active"] is False
            stack.wait_replica_caught_up()
            refused = await daq.get("/obs_units")
            assert refused.status_code == 401
            assert "disabled" in refused.json()["detail"]


async def test_preferences_are_a_validated_json_object_per_user(
    tokens: Tokens, secondary_settings: Settings, stack: Stack
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        prefs = {"theme": "dark", "panels": ["buffer", "transfers"], "refresh_s": 5}
        put = await http.put("/users/me/preferences", json=prefs)
        assert put.status_code == 200, put.text
        stack.wait_replica_caught_up()
        assert (await http.get("/users/me/preferences")).json() == prefs
        for bad, field in (
            ([1, 2], "body"),
            ({"note": "a\u0000b"}, "preferences"),
            ({"blob": "x" * 70_000}, "preferences"),
        ):
            r = await http.put("/users/me/preferences", json=bad)
            assert r.status_code == 422, r.text
            assert field in r.json()["detail"]
        assert (await http.get("/users/me/preferences")).json() == prefs


async def test_token_secrets_never_appear_in_logs_listings_or_the_database(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        issued = (await http.post("/tokens", json={"name": "secretive"})).json()
        secret = issued["token"].split("_", 2)[2]
        stack.wait_replica_caught_up()
        async with client(url, issued["token"]) as used:
            assert (await used.get("/obs_units")).status_code == 200
            assert (await used.get("/nowhere")).status_code == 404
        listing = (await http.get("/tokens")).text
    assert secret not in listing
    assert secret not in caplog.text
    assert issued["token"] not in caplog.text
    rows = await fetchval(
        stack.main_db.dsn(),
        "SELECT count(*) FROM api_tokens WHERE row_to_json(api_tokens)::text LIKE $1",
        f"%{secret}%",
    )
    assert rows == 0


async def test_last_used_is_written_in_the_background_and_waits_out_an_outage(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    settings = secondary_settings.model_copy(
        update={"token_usage_flush_s": 0.2, "db_connect_timeout_s": 1.0}
    )
    async with serve(settings) as url, client(url, tokens.admin) as admin:
        issued = (await admin.post("/tokens", json={"name": "usage"})).json()
        stack.wait_replica_caught_up()
        stack.wan.down()
        async with client(url, issued["token"], timeout_s=3) as used:
            started = time.monotonic()
            assert (await used.get("/obs_units")).status_code == 200
            assert time.monotonic() - started < 2  # no write to main on the request path
        await asyncio.sleep(1.0)
        query = "SELECT last_used_at IS NOT NULL FROM api_tokens WHERE id = $1"
        assert await fetchval(stack.main_db.dsn(), query, issued["id"]) is False
        stack.wan.up()

        async def recorded() -> bool:
            return bool(await fetchval(stack.main_db.dsn(), query, issued["id"]))

        await eventually(recorded, timeout_s=15)


async def test_non_buffered_writes_answer_503_quickly_while_main_is_unreachable(
    stack: Stack, tokens: Tokens, secondary_settings: Settings
) -> None:
    settings = secondary_settings.model_copy(update={"db_connect_timeout_s": 1.0})
    async with serve(settings) as url, client(url, tokens.operator, timeout_s=10) as http:
        stack.wan.down()
        started = time.monotonic()
        r = await http.post("/tokens", json={"name": "offline"})
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"]
        assert time.monotonic() - started < 8
        # Reads and critical writes carry on.
        assert (await http.get("/tokens")).status_code == 200
        assert (
            await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
        ).status_code == 201


async def test_the_development_token_works_only_in_development_mode(
    secondary_settings: Settings,
) -> None:
    dev = secondary_settings.model_copy(update={"development": True})
    async with serve(dev) as url, client(url, "ccat-dev-token") as http:
        me = (await http.get("/auth/me")).json()
        assert me["role"] == "admin"
        assert me["authenticated_with"] == "development"
        assert (await http.get("/tokens")).status_code == 400  # it has no account
    async with serve(secondary_settings) as url, client(url, "ccat-dev-token") as http:
        refused = await http.get("/auth/me")
        assert refused.status_code == 401
        assert "outside development mode" in refused.json()["detail"]
