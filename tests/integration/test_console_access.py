"""Who gets into the operator console and how: a refused token, a viewer without operator
buttons, a strict content security policy, and a GitHub session that stays live past its
access token's expiry and ends with a clear message."""

from __future__ import annotations

import asyncio
import base64
import json
import time

from playwright.async_api import Browser, expect

from ccat_api.config import Settings
from ccat_api.devstack.system import free_port
from tests.github_standin import CLIENT_ID, CLIENT_SECRET, Account, GitHubStandIn
from tests.integration.conftest import Tokens
from tests.integration.console_page import WAIT_MS, open_console
from tests.support import bearer, client, eventually, serve, serve_asgi

TOKEN_KEY = "ccat-console-token"
# Far below the 30 s floor Settings enforces (model_copy skips validation, on purpose): the
# console must renew the token several times within the test.
ACCESS_TTL_S = 3


async def test_a_viewer_sees_the_console_without_operator_buttons(
    tokens: Tokens, secondary_settings: Settings, browser: Browser
) -> None:
    async with serve(secondary_settings) as url:
        page = await browser.new_page()
        await page.goto(f"{url}/console")
        await page.fill("#token-input", "ccat_wrong_token")
        await page.click("#token-form button[type=submit]")
        await expect(page.locator("#sign-in-error")).to_have_text("That token was refused.")
        # An observer may watch (read:buffer) but has no Retry/Discard to press.
        page, problems = await open_console(browser, url, tokens.observer)
        assert await page.locator("button[data-action]").count() == 0
        assert problems == [], problems


async def test_the_console_is_served_with_a_strict_content_security_policy(
    secondary_settings: Settings,
) -> None:
    async with serve(secondary_settings) as url, client(url) as anonymous:
        for path, kind in (
            ("/console", "text/html"),
            ("/console/console.js", "text/javascript"),
            ("/console/console.css", "text/css"),
        ):
            response = await anonymous.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith(kind)
            assert "default-src 'self'" in response.headers["content-security-policy"]
        assert (await anonymous.get("/console/other.js")).status_code == 404


def expiry_of(access_token: str) -> float:
    payload = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return float(claims["exp"])


def unexpected(problems: list[str]) -> list[str]:
    # Chromium logs every 401 answer as a console error; a 401 the page cured by refreshing
    # is expected here, anything else is not.
    return [p for p in problems if "status of 401" not in p]


async def test_a_github_session_keeps_the_console_live_past_its_access_token(
    tokens: Tokens, secondary_settings: Settings, browser: Browser
) -> None:
    github = GitHubStandIn(
        account=Account(id=7101, login="console-night", teams=["telescope-operators"])
    )
    port = free_port()
    async with serve_asgi(github.app()) as github_url:
        settings = secondary_settings.model_copy(
            update={
                "public_url": f"http://127.0.0.1:{port}",
                "github_client_id": CLIENT_ID,
                "github_client_secret": CLIENT_SECRET,
                "github_org_name": "ccatobs",
                "github_team_roles": {"telescope-operators": "operator"},
                "github_oauth_url": github_url,
                "github_api_url": f"{github_url}/api",
                "post_login_redirect": "/console",
                "access_token_ttl_s": ACCESS_TTL_S,
                "live_status_interval_s": 0.2,
            }
        )
        async with serve(settings, port=port) as url, client(url, tokens.operator) as http:
            page = await browser.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
            )
            refreshes: list[str] = []
            page.on(
                "request",
                lambda r: refreshes.append(r.url) if r.url.endswith("/auth/refresh") else None,
            )
            sockets: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))

            # The whole login in the browser: console -> gateway -> GitHub -> callback -> console.
            await page.goto(f"{url}/console")
            await page.click("#github-login")
            await expect(page.locator("#dashboard")).to_be_visible(timeout=WAIT_MS)
            await expect(page.locator("#who")).to_have_text("console-night (operator)")
            await expect(page.locator("#connection")).to_have_attribute(
                "data-state", "live", timeout=WAIT_MS
            )
            # "live" comes with the first stream open; each stream fetches its own ticket, so
            # the second may still be on its way.
            await expect(page.locator("#connection")).to_have_text(
                "live (2 streams)", timeout=WAIT_MS
            )
            first = await page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')")
            assert len(refreshes) == 1
            assert len(sockets) == 2

            # Past the first token's expiry: its monitors were closed by then (their lifetime
            # is the token's), and the page renewed and reconnected on its own.
            await asyncio.sleep(max(0.0, expiry_of(first) - time.time()) + 0.5)
            current = await page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')")
            assert current != first
            assert expiry_of(current) > time.time()
            assert len(refreshes) >= 2

            async def reconnected() -> bool:
                return len(sockets) >= 4

            await eventually(reconnected, timeout_s=WAIT_MS / 1000)
            write = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()
            written = page.locator(f'#transactions tr[data-tx-id="{write["tx_id"]}"]')
            await expect(written).to_have_attribute("data-state", "buffered", timeout=WAIT_MS)
            await expect(page.locator("#buffer-depth")).to_have_text("1", timeout=WAIT_MS)
            await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
            assert await page.locator("#error").inner_text() == ""

            # A tab that kept an expired token (a reload after sleep) refreshes rather than
            # saying the token was refused.
            await page.evaluate(f"t => sessionStorage.setItem('{TOKEN_KEY}', t)", first)
            before = len(refreshes)
            await page.reload()
            await expect(page.locator("#dashboard")).to_be_visible(timeout=WAIT_MS)
            await expect(page.locator("#connection")).to_have_attribute(
                "data-state", "live", timeout=WAIT_MS
            )
            assert len(refreshes) > before
            await expect(written).to_be_visible(timeout=WAIT_MS)

            # Logged out elsewhere: the next renewal is refused, and the page stops and says so
            # instead of reconnecting forever.
            current = await page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')")
            assert (await http.post("/auth/logout", headers=bearer(current))).status_code == 204
            await expect(page.locator("#sign-in")).to_be_visible(timeout=WAIT_MS)
            await expect(page.locator("#sign-in-error")).to_contain_text(
                "Your GitHub session has ended"
            )
            await expect(page.locator("#connection")).to_have_attribute("data-state", "idle")
            assert await page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
            assert unexpected(problems) == [], problems
