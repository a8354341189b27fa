"""The authorization matrix, generated from the app's route table: every protected route,
every kind of bad credential, over real HTTP. Each answer must be a 401 or 403 that says
what is wrong; never a 5xx, never data."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from websockets.asyncio.client import connect

from ccat_api.app import create_app
from ccat_api.auth.permissions import Permission
from ccat_api.auth.tokens import ensure_service_account, issue_token, revoke_token
from ccat_api.config import Settings
from ccat_api.db.engines import PrimaryDatabase, make_engine
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.routes import RouteInfo, api_routes, requirement
from tests.support import client, serve


@dataclass(frozen=True)
class BadCredentials:
    expired: str
    revoked: str
    disabled: str
    no_permissions: str
    narrow_scope: str  # an admin's token limited to manage:account
    foreign_session: str  # a session token signed with another secret


@pytest.fixture(scope="module")
def bad(stack: Stack) -> BadCredentials:
    async def make() -> BadCredentials:
        db = PrimaryDatabase(
            make_engine(stack.main_db.url(), pool_size=1, connect_timeout_s=5, application_name="t")
        )
        try:
            async with db.begin() as conn:
                await conn.exec_driver_sql(
                    "INSERT INTO roles (name, description) VALUES ('nobody', 'no permissions')"
                    " ON CONFLICT DO NOTHING"
                )
            nobody = await ensure_service_account(db, "matrix-nobody", "nobody")
            admin = await ensure_service_account(db, "matrix-admin", "admin")
            disabled_user = await ensure_service_account(db, "matrix-disabled", "admin")
            expired = await issue_token(
                db, user_id=admin, name="expired", expires_at=datetime.now(UTC) - timedelta(days=1)
            )
            revoked = await issue_token(db, user_id=admin, name="revoked")
            assert await revoke_token(db, revoked.token_id)
            disabled = await issue_token(db, user_id=disabled_user, name="disabled")
            async with db.begin() as conn:
                await conn.exec_driver_sql(
                    f"UPDATE users SET active = false WHERE id = {disabled_user}"
                )
            no_permissions = await issue_token(db, user_id=nobody, name="nobody")
            narrow = await issue_token(
                db, user_id=admin, name="narrow", scopes=[Permission.MANAGE_ACCOUNT.value]
            )
        finally:
            await db.dispose()
        foreign_key = OctKey.import_key(b"another-secret-entirely-of-32-bytes!")
        foreign = jwt.encode(
            {"alg": "HS256"},
            {"iss": "ccat_api", "sub": str(admin), "sid": str(uuid.uuid4()), "typ": "access",
             "iat": 0, "exp": 2**31},
            foreign_key,
        )  # fmt: skip
        return BadCredentials(
            expired=expired.plaintext,
            revoked=revoked.plaintext,
            disabled=disabled.plaintext,
            no_permissions=no_permissions.plaintext,
            narrow_scope=narrow.plaintext,
            foreign_session=foreign,
        )

    made = asyncio.run(make())
    stack.wait_replica_caught_up()
    return made


def _protected_routes(settings: Settings) -> list[tuple[RouteInfo, Permission | None]]:
    found = []
    for route in api_routes(create_app(settings)):
        needs = requirement(route.dependant)
        assert needs is not None, f"{route.method} {route.path} declares nothing"
        if not needs.public:
            found.append((route, needs.permission))
    return found


def _cases(
    bad: BadCredentials, permission: Permission | None
) -> list[tuple[str, dict[str, str], int, str]]:
    """(case, headers, expected status, phrase the answer must contain)."""
    cases = [
        ("no token", {}, 401, "missing Authorization"),
        ("not bearer", {"Authorization": "Token abc"}, 401, "Bearer"),
        ("malformed", {"Authorization": "Bearer not-a-token"}, 401, "malformed"),
        ("malformed api token", {"Authorization": "Bearer ccat_only"}, 401, "malformed"),
        ("unknown", {"Authorization": "Bearer ccat_0123456789ab_unknown"}, 401, "unknown"),
        ("expired", {"Authorization": f"Bearer {bad.expired}"}, 401, "expired"),
        ("revoked", {"Authorization": f"Bearer {bad.revoked}"}, 401, "revoked"),
        ("disabled account", {"Authorization": f"Bearer {bad.disabled}"}, 401, "disabled"),
        ("forged session", {"Authorization": f"Bearer {bad.foreign_session}"}, 401, "invalid"),
        ("development token", {"Authorization": "Bearer ccat-dev-token"}, 401, "development"),
    ]
    if permission is not None:
        cases.append(
            ("role without it", {"Authorization": f"Bearer {bad.no_permissions}"}, 403,
             permission.value)
        )  # fmt: skip
        if permission is not Permission.MANAGE_ACCOUNT:
            cases.append(
                ("narrower scope", {"Authorization": f"Bearer {bad.narrow_scope}"}, 403, "scope")
            )
    return cases


@pytest.mark.parametrize("site_type", ["secondary", "main"])
async def test_every_protected_route_refuses_every_bad_credential_clearly(
    bad: BadCredentials, secondary_settings: Settings, main_settings: Settings, site_type: str
) -> None:
    """At both kinds of site, before anything is looked up: the sample paths name records
    that do not exist, and routes a site does not serve (the buffer's, at main) would answer
    404, so a 404 here is existence told before authorization."""
    settings = secondary_settings if site_type == "secondary" else main_settings
    routes = _protected_routes(settings)
    assert len(routes) > 20
    failures = []
    async with serve(settings) as url, client(url) as http:
        for route, permission in routes:
            for case, headers, status, phrase in _cases(bad, permission):
                r = await http.request(route.method, route.sample_path(), headers=headers, json={})
                body = (
                    r.json()
                    if r.headers.get("content-type", "").startswith("application/json")
                    else {}
                )
                ok = (
                    r.status_code == status
                    and phrase.lower() in str(body.get("detail", "")).lower()
                    and set(body) <= {"detail", "field", "code"}
                )
                if not ok:
                    failures.append(
                        f"{route.method} {route.path} [{case}] -> {r.status_code} {r.text[:160]}"
                    )
    assert failures == []


async def test_a_scoped_token_may_do_exactly_what_its_scopes_allow(
    stack: Stack, secondary_settings: Settings
) -> None:
    db = PrimaryDatabase(
        make_engine(stack.main_db.url(), pool_size=1, connect_timeout_s=5, application_name="t")
    )
    admin = await ensure_service_account(db, "scoped-admin", "admin")
    reader = await issue_token(
        db, user_id=admin, name="reader", scopes=[Permission.READ_OBSERVATIONS.value]
    )
    await db.dispose()
    stack.wait_replica_caught_up()
    async with serve(secondary_settings) as url, client(url, reader.plaintext) as http:
        assert (await http.get("/obs_units")).status_code == 200
        write = await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
        assert write.status_code == 403
        assert "read:observations" in write.json()["detail"]
        assert (await http.get("/users")).status_code == 403
        me = (await http.get("/auth/me")).json()
        assert me["permissions"] == ["read:observations"]
        assert me["role"] == "admin"


async def test_a_websocket_ticket_opens_a_monitor_only_at_the_site_that_issued_it(
    tokens: Tokens, secondary_settings: Settings, main_settings: Settings
) -> None:
    """Sites share the signing secret but not the record of used tickets: without the site in
    the ticket, one issued at main could be redeemed once more at every other site."""
    async with (
        serve(secondary_settings) as site_url,
        serve(main_settings) as main_url,
        client(site_url, tokens.observer) as site,
        client(main_url, tokens.observer) as main,
    ):
        for issuer, issuer_url, other_url, other_name in (
            (main, main_url, site_url, secondary_settings.site_name),
            (site, site_url, main_url, main_settings.site_name),
        ):
            ticket = (await issuer.post("/api/ws/tickets")).json()["ticket"]
            code, reason = await _monitor_close(other_url, f"/api/ws/buffer?ticket={ticket}")
            assert code == 4401
            assert "issued by site" in reason
            assert other_name in reason
            # Refused elsewhere, the ticket is still good once, where it was issued.
            async with connect(_ws(issuer_url, f"/api/ws/buffer?ticket={ticket}")) as ws:
                assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "hello"


async def test_a_monitor_checks_credentials_before_its_parameters(
    tokens: Tokens, main_settings: Settings
) -> None:
    async with serve(main_settings) as url:
        code, _ = await _monitor_close(url, "/api/ws/transactions?tx_id=not-a-uuid")
        assert code == 4401
        code, _ = await _monitor_close(url, "/api/ws/transactions?tx_id=not-a-uuid", tokens.viewer)
        assert code == 4403
        code, _ = await _monitor_close(url, "/api/ws/transactions?tx_id=not-a-uuid", tokens.admin)
        assert code == 4422


def _ws(base_url: str, path: str) -> str:
    return base_url.replace("http://", "ws://", 1) + path


async def _monitor_close(base_url: str, path: str, token: str | None = None) -> tuple[int, str]:
    """The close code and reason a monitor gets when the gateway refuses it."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with connect(_ws(base_url, path), additional_headers=headers) as ws:
        await asyncio.wait_for(ws.wait_closed(), 10)
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""
