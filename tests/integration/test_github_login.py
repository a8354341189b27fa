"""Logging in with GitHub end to end, against a stand-in for GitHub served over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.devstack.system import free_port
from tests.github_standin import CLIENT_ID, CLIENT_SECRET, Account, GitHubStandIn
from tests.support import fetchval, serve, serve_asgi

TEAM_ROLES = {
    "admins": "admin",
    "telescope-operators": "operator",
    "science": "observer",
    "instruments": "service",
    "dashboards": "viewer",
}


@dataclass
class Login:
    gateway: str
    github: GitHubStandIn
    http: httpx.AsyncClient


@asynccontextmanager
async def login_setup(stack: Stack, **overrides: object) -> AsyncIterator[Login]:
    github = GitHubStandIn()
    port = free_port()
    async with serve_asgi(github.app()) as github_url:
        settings = Settings.model_validate(
            {
                **stack.settings_overrides("main", secondary=False),
                "public_url": f"http://127.0.0.1:{port}",
                "github_client_id": CLIENT_ID,
                "github_client_secret": CLIENT_SECRET,
                "github_org_name": "ccatobs",
                "github_team_roles": TEAM_ROLES,
                "github_oauth_url": github_url,
                "github_api_url": f"{github_url}/api",
                "post_login_redirect": "/dashboard",
                **overrides,
            }
        )
        async with (
            serve(settings, port=port) as gateway,
            httpx.AsyncClient(timeout=10) as http,
        ):
            yield Login(gateway, github, http)


async def browse_to_callback(login: Login) -> httpx.Response:
    """What a browser does: the gateway's login redirect, GitHub, back to the callback."""
    start = await login.http.get(f"{login.gateway}/auth/github/login")
    assert start.status_code == 302, start.text
    assert "/login/oauth/authorize?" in start.headers["location"]
    at_github = await login.http.get(start.headers["location"])
    assert at_github.status_code == 302
    return await login.http.get(at_github.headers["location"])


async def complete_login(login: Login) -> str:
    callback = await browse_to_callback(login)
    assert callback.status_code == 303, callback.text
    assert callback.headers["location"] == "/dashboard"
    assert "ccat_refresh" in callback.cookies
    # No token rides in a URL.
    assert "token" not in callback.headers["location"]
    refreshed = await login.http.post(f"{login.gateway}/auth/refresh")
    assert refreshed.status_code == 200, refreshed.text
    body = refreshed.json()
    assert "refresh_token" not in body  # it stays in the HttpOnly cookie
    return str(body["access_token"])


@pytest.mark.parametrize(
    ("teams", "role"),
    [
        (["admins", "science"], "admin"),
        (["telescope-operators"], "operator"),
        (["science"], "observer"),
        (["instruments"], "service"),
        (["dashboards"], "viewer"),
    ],
)
async def test_login_maps_the_persons_teams_to_a_role(
    stack: Stack, teams: list[str], role: str
) -> None:
    async with login_setup(stack) as login:
        login.github.account = Account(id=5000 + len(role), login=f"user-{role}", teams=teams)
        access = await complete_login(login)
        me = await login.http.get(
            f"{login.gateway}/auth/me", headers={"Authorization": f"Bearer {access}"}
        )
        assert me.status_code == 200, me.text
        assert me.json()["login"] == f"user-{role}"
        assert me.json()["role"] == role
        assert me.json()["authenticated_with"] == "session"


async def test_a_tampered_state_is_refused(stack: Stack) -> None:
    async with login_setup(stack) as login:
        start = await login.http.get(f"{login.gateway}/auth/github/login")
        at_github = await login.http.get(start.headers["location"])
        back = urlsplit(at_github.headers["location"])
        params = {k: v[0] for k, v in parse_qs(back.query).items()}
        params["state"] = "forged-" + params["state"]
        forged = await login.http.get(f"{login.gateway}{back.path}?{urlencode(params)}")
        assert forged.status_code == 400, forged.text
        assert forged.json()["field"] == "state"
        assert "ccat_refresh" not in forged.cookies


async def test_a_callback_without_the_login_cookie_is_refused(stack: Stack) -> None:
    """A callback someone else's browser started (CSRF) carries no matching state cookie."""
    async with login_setup(stack) as login:
        start = await login.http.get(f"{login.gateway}/auth/github/login")
        at_github = await login.http.get(start.headers["location"])
        async with httpx.AsyncClient(timeout=10) as victim:
            hijacked = await victim.get(at_github.headers["location"])
        assert hijacked.status_code == 400, hijacked.text


async def test_denied_consent_is_a_clear_401(stack: Stack) -> None:
    async with login_setup(stack) as login:
        login.github.account = Account(deny_consent=True)
        callback = await browse_to_callback(login)
        assert callback.status_code == 401
        assert "not granted: access_denied" in callback.json()["detail"]


async def test_someone_outside_the_organisation_is_refused(stack: Stack) -> None:
    async with login_setup(stack) as login:
        login.github.account = Account(id=7001, login="outsider", member=False, teams=["admins"])
        callback = await browse_to_callback(login)
        assert callback.status_code == 403
        assert "not a member of 'ccatobs'" in callback.json()["detail"]
        assert (
            await fetchval(
                stack.main_db.dsn(), "SELECT count(*) FROM users WHERE login = 'outsider'"
            )
            == 0
        )


async def test_a_member_in_no_mapped_team_gets_the_default_role_or_nothing(stack: Stack) -> None:
    async with login_setup(stack) as login:
        login.github.account = Account(id=7002, login="no-team", teams=["other-team"])
        refused = await browse_to_callback(login)
        assert refused.status_code == 403
    async with login_setup(stack, github_default_role="viewer") as login:
        login.github.account = Account(id=7002, login="no-team", teams=["other-team"])
        access = await complete_login(login)
        me = await login.http.get(
            f"{login.gateway}/auth/me", headers={"Authorization": f"Bearer {access}"}
        )
        assert me.json()["role"] == "viewer"


async def test_refresh_rotates_and_logout_ends_the_session(stack: Stack) -> None:
    async with login_setup(stack) as login:
        login.github.account = Account(id=7003, login="rotating", teams=["science"])
        access = await complete_login(login)
        first_refresh = login.http.cookies.get("ccat_refresh", path="/auth")
        again = await login.http.post(f"{login.gateway}/auth/refresh")
        assert again.status_code == 200
        # The previous refresh token is spent.
        replay = await login.http.post(
            f"{login.gateway}/auth/refresh", json={"refresh_token": first_refresh}
        )
        assert replay.status_code == 401
        bearer = {"Authorization": f"Bearer {again.json()['access_token']}"}
        assert (
            await login.http.post(f"{login.gateway}/auth/logout", headers=bearer)
        ).status_code == 204
        after = await login.http.get(
            f"{login.gateway}/auth/me", headers={"Authorization": f"Bearer {access}"}
        )
        assert after.status_code == 401
        assert "session ended" in after.json()["detail"]
        assert (await login.http.post(f"{login.gateway}/auth/refresh")).status_code == 401


async def test_a_session_works_at_the_secondary_site_while_main_is_unreachable(
    stack: Stack, secondary_settings: Settings
) -> None:
    async with login_setup(stack) as login:
        login.github.account = Account(id=7004, login="night-shift", teams=["telescope-operators"])
        access = await complete_login(login)
    stack.wait_replica_caught_up()
    bearer = {"Authorization": f"Bearer {access}"}
    async with (
        serve(secondary_settings) as site,
        httpx.AsyncClient(base_url=site, timeout=5) as http,
    ):
        stack.wan.down()
        me = await http.get("/auth/me", headers=bearer)
        assert me.status_code == 200, me.text
        write = await http.post(
            "/executed_obs_units/start", json={"obs_unit_id": 1}, headers=bearer
        )
        assert write.status_code == 201, write.text
        assert write.json()["status"] == "buffered"


async def test_login_works_under_a_path_prefix(stack: Stack) -> None:
    """Behind a proxy that serves the gateway at /ccat/: the callback lands under the prefix
    and the refresh cookie is sent back to /ccat/auth/refresh."""
    from tests.prefix_proxy import PrefixProxy

    github = GitHubStandIn()
    gateway_port, proxy_port = free_port(), free_port()
    public = f"http://127.0.0.1:{proxy_port}/ccat"
    async with serve_asgi(github.app()) as github_url:
        settings = Settings.model_validate(
            {
                **stack.settings_overrides("main", secondary=False),
                "public_url": public,
                "root_path": "/ccat",
                "github_client_id": CLIENT_ID,
                "github_client_secret": CLIENT_SECRET,
                "github_org_name": "ccatobs",
                "github_team_roles": TEAM_ROLES,
                "github_oauth_url": github_url,
                "github_api_url": f"{github_url}/api",
                "post_login_redirect": "/console",
            }
        )
        async with (
            serve(settings, port=gateway_port) as gateway,
            serve_asgi(PrefixProxy(gateway, "/ccat"), port=proxy_port),
            httpx.AsyncClient(timeout=10) as http,
        ):
            github.account = Account(id=7001, login="prefixed", teams=["science"])
            start = await http.get(f"{public}/auth/github/login")
            assert start.status_code == 302, start.text
            at_github = await http.get(start.headers["location"])
            callback = await http.get(at_github.headers["location"])
            assert callback.status_code == 303, callback.text
            assert callback.headers["location"] == "/ccat/console"
            assert http.cookies.get("ccat_refresh", path="/ccat/auth")
            refreshed = await http.post(f"{public}/auth/refresh")
            assert refreshed.status_code == 200, refreshed.text
            me = await http.get(
                f"{public}/auth/me",
                headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"},
            )
            assert me.json()["login"] == "prefixed"
