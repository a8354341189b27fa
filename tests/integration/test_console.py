"""The operator console in headless Chromium against a real gateway: it signs in, shows a
buffered write become visible, and retries a dead letter from the page; a GitHub session
stays live past its access token's expiry, and ends with a clear message."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from ccat_api.devstack.system import free_port
from tests.github_standin import CLIENT_ID, CLIENT_SECRET, Account, GitHubStandIn
from tests.integration.conftest import Tokens
from tests.prefix_proxy import PrefixProxy
from tests.support import (
    bearer,
    client,
    eventually,
    fetchval,
    refused_on_main,
    serve,
    serve_asgi,
    settle,
    site_worker,
)

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking switches Chromium keeps dialing out, and this
# machine's closed network refuses it noisily.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WAIT_MS = 15_000
TOKEN_KEY = "ccat-console-token"
# Far below the 30 s floor Settings enforces (model_copy skips validation, on purpose): the
# console must renew the token several times within the test.
ACCESS_TTL_S = 3
PREFIX = "/ccat"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def open_console(
    browser: Browser, url: str, token: str, *, fetched: list[str] | None = None
) -> tuple[Page, list[str]]:
    """The console, signed in with ``token``; the list collects the page's JS errors, and
    ``fetched`` (if given) every URL the page requests or opens a WebSocket to."""
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    if fetched is not None:
        page.on("request", lambda request: fetched.append(request.url))
        page.on("websocket", lambda ws: fetched.append(ws.url))
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type == "error"
            else None
        ),
    )
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto(f"{url}/console")
    await expect(page.locator("#sign-in")).to_be_visible(timeout=WAIT_MS)
    await page.fill("#token-input", token)
    await page.click("#token-form button[type=submit]")
    await expect(page.locator("#dashboard")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#connection")).to_have_attribute(
        "data-state", "live", timeout=WAIT_MS
    )
    return page, problems


def row(page: Page, table: str, tx_id: str) -> object:
    return page.locator(f'#{table} tr[data-tx-id="{tx_id}"]')


async def test_the_console_shows_writes_become_visible_and_retries_a_dead_letter(
    stack: Stack,
    tokens: Tokens,
    secondary_settings: Settings,
    worker: SiteWorker,
    browser: Browser,
) -> None:
    settings = secondary_settings.model_copy(update={"live_status_interval_s": 0.2})
    async with serve(settings) as url, client(url, tokens.operator) as http:
        page, problems = await open_console(browser, url, tokens.admin)
        await expect(page.locator("#site-name")).to_have_text(settings.site_name)
        assert await page.locator("#error").inner_text() == ""

        write = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()
        written = page.locator(f'#transactions tr[data-tx-id="{write["tx_id"]}"]')
        await expect(written).to_have_attribute("data-state", "buffered", timeout=WAIT_MS)
        await expect(page.locator("#buffer-depth")).to_have_text("1", timeout=WAIT_MS)
        assert await worker.processor.run_once() == 1
        await expect(written).to_have_attribute("data-state", "applied", timeout=WAIT_MS)
        await asyncio.to_thread(stack.wait_replica_caught_up)
        await worker.tracker.run_once()
        await expect(written).to_have_attribute("data-state", "visible", timeout=WAIT_MS)
        await expect(page.locator("#buffer-depth")).to_have_text("0", timeout=WAIT_MS)

        poison = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()
        with refused_on_main(stack, "executed_obs_units", f"id <> '{poison['id']}'::uuid"):
            assert await worker.processor.run_once() == 1
        dead = page.locator(f'#dead-letters tr[data-tx-id="{poison["tx_id"]}"]')
        await expect(dead).to_be_visible(timeout=WAIT_MS)
        await expect(dead).to_contain_text("23514")  # check_violation, named by main
        await expect(page.locator("#dead-count")).to_have_text("1", timeout=WAIT_MS)
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / "console.png"
        await page.screenshot(path=str(screenshot), full_page=True)
        print(f"console screenshot: {screenshot}")

        await dead.locator('button[data-action="retry"]').click()
        await expect(dead).to_have_count(0, timeout=WAIT_MS)
        await expect(page.locator("#notice")).to_contain_text("Re-buffered 1 transaction")
        retried = page.locator(f'#transactions tr[data-tx-id="{poison["tx_id"]}"]')
        await expect(retried).to_have_attribute("data-state", "buffered", timeout=WAIT_MS)
        async with client(url, tokens.admin) as admin:
            state = (await admin.get(f"/transactions/{poison['tx_id']}")).json()["state"]
        assert state == "buffered"
        assert await worker.processor.run_once() == 1
        await expect(retried).to_have_attribute("data-state", "applied", timeout=WAIT_MS)
        await expect(page.locator("#dead-count")).to_have_text("0", timeout=WAIT_MS)
        assert problems == [], problems
        assert await page.locator("#error").inner_text() == ""


async def test_the_console_says_the_buffer_is_unavailable_while_redis_is_down(
    stack: Stack, tokens: Tokens, secondary_settings: Settings, browser: Browser
) -> None:
    settings = secondary_settings.model_copy(update={"live_status_interval_s": 0.2})
    async with serve(settings) as url:
        page, problems = await open_console(browser, url, tokens.observer)
        await expect(page.locator("#buffer-depth")).to_have_text("0", timeout=WAIT_MS)
        await asyncio.to_thread(stack.redis.kill)
        try:
            # Not the last figures it had: they would read as a calm, empty buffer.
            await expect(page.locator("#buffer-depth")).to_have_text("unavailable", timeout=WAIT_MS)
            await expect(page.locator("#dead-count")).to_have_text("unavailable")
            await expect(page.locator("#tile-buffer")).to_have_class("tile bad")
            await expect(page.locator("#notice")).to_contain_text("Buffer unavailable")
        finally:
            await asyncio.to_thread(stack.redis.start)
        await expect(page.locator("#buffer-depth")).to_have_text("0", timeout=WAIT_MS)
        await expect(page.locator("#dead-count")).to_have_text("0", timeout=WAIT_MS)
        await expect(page.locator("#notice")).to_have_text("")
        assert problems == [], problems


async def samples_shown(page: Page) -> int:
    return int(await page.locator("#history").get_attribute("data-samples") or 0)


async def test_the_console_under_a_path_prefix_charts_the_sites_history_across_a_reload(
    tokens: Tokens, secondary_settings: Settings, browser: Browser
) -> None:
    # Samples every half second (below the 1 s floor Settings enforces: model_copy skips
    # validation, on purpose) so a few seconds of work make a history worth a chart.
    settings = secondary_settings.model_copy(
        update={"root_path": PREFIX, "live_status_interval_s": 0.2, "history_interval_s": 0.5}
    )
    async with (
        serve(settings) as gateway_url,
        client(gateway_url, tokens.operator) as http,
        # Small batches, so the backlog drains in steps the charts show.
        site_worker(settings.model_copy(update={"processor_batch_size": 20})) as worker,
    ):
        proxy = PrefixProxy(gateway_url, PREFIX)
        async with serve_asgi(proxy) as proxy_url:
            console_url = f"{proxy_url}{PREFIX}"

            async def write(count: int) -> None:
                for _ in range(count):
                    answer = await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
                    assert answer.status_code == 201, answer.text

            # A backlog that builds up while main is away, then drains in two batches.
            for count in (2, 4, 6, 8, 10, 6):
                await write(count)
                await asyncio.sleep(0.5)
            fetched: list[str] = []
            page, problems = await open_console(browser, console_url, tokens.admin, fetched=fetched)
            await expect(page.locator("#history")).to_be_visible()
            await expect(page.locator("#history-drain")).to_contain_text("nothing drains")
            await eventually(lambda: samples_shown(page), timeout_s=WAIT_MS / 1000)
            assert await worker.processor.run_once() == 20
            await asyncio.sleep(1.0)
            assert await worker.processor.run_once() == 16
            await asyncio.sleep(0.5)
            await write(3)
            await expect(page.locator("#buffer-depth")).to_have_text("3", timeout=WAIT_MS)
            await asyncio.sleep(1.5)
            for chart in ("depth", "rates", "age", "lag"):
                await expect(page.locator(f"#chart-{chart} canvas")).to_have_count(1)
            shown = await samples_shown(page)
            assert shown >= 10
            ARTIFACTS.mkdir(exist_ok=True)
            screenshot = ARTIFACTS / "console-history.png"
            await page.screenshot(path=str(screenshot))  # the tiles and charts: one screen
            print(f"console history screenshot: {screenshot}")

            # The history is the gateway's, not the page's: a reload shows it all again.
            await page.reload()
            await expect(page.locator("#connection")).to_have_attribute(
                "data-state", "live", timeout=WAIT_MS
            )

            async def reloaded() -> bool:
                return await samples_shown(page) >= shown

            await eventually(reloaded, timeout_s=WAIT_MS / 1000)

            # Everything the page fetched, WebSockets included, went through the prefix.
            inside = console_url.split("://", 1)[1] + "/"
            assert [u for u in fetched if not u.split("://", 1)[1].startswith(inside)] == []
            assert proxy.outside == []
            assert len([u for u in fetched if u.startswith("ws://")]) >= 2
            # The gateway knows its prefix: /docs loads the OpenAPI from under it.
            async with client(proxy_url) as anonymous:
                docs = await anonymous.get(f"{PREFIX}/docs")
            assert docs.status_code == 200
            assert f"'{PREFIX}/openapi.json'" in docs.text
            assert problems == [], problems
            assert await page.locator("#error").inner_text() == ""


async def test_a_main_site_console_shows_no_buffer_charts(
    tokens: Tokens, main_settings: Settings, browser: Browser
) -> None:
    settings = main_settings.model_copy(
        update={"live_status_interval_s": 0.2, "history_interval_s": 0.5}
    )
    async with serve(settings) as url:
        page, problems = await open_console(browser, url, tokens.observer)
        await expect(page.locator("#site-type")).to_have_text("main")
        # Its history has samples (main's reachability) but nothing a buffer chart could show.
        await eventually(lambda: samples_shown(page), timeout_s=WAIT_MS / 1000)
        await expect(page.locator("#history")).to_be_hidden()
        assert await page.locator("#history canvas").count() == 0
        # A main site keeps no buffer to list: /transactions answers 404, which the page
        # expects and Chromium logs.
        assert [p for p in problems if "status of 404" not in p] == [], problems
        assert await page.locator("#error").inner_text() == ""


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


async def test_the_console_shows_a_conflicts_two_versions_and_applies_it_anyway(
    stack: Stack,
    tokens: Tokens,
    secondary_settings: Settings,
    worker: SiteWorker,
    browser: Browser,
) -> None:
    async with serve(secondary_settings) as url, client(url, tokens.operator) as http:
        unit = (await http.post("/executed_obs_units/start", json={"obs_unit_id": 1})).json()
        await settle(stack, worker)
        finish = (await http.put(f"/executed_obs_units/{unit['id']}/finish", json={})).json()
        stack.main_db.psql(
            f"UPDATE executed_obs_units SET mean_pwv_mm = 5.5 WHERE id = '{unit['id']}'",
            user="ccat",
        )
        await settle(stack, worker)

        page, problems = await open_console(browser, url, tokens.admin)
        dead = page.locator(f'#dead-letters tr[data-tx-id="{finish["tx_id"]}"]')
        await expect(dead).to_contain_text("conflict", timeout=WAIT_MS)
        await expect(dead.locator(".conflict-main")).to_contain_text("main now (version 2)")
        await expect(dead.locator(".conflict-main")).to_contain_text('"mean_pwv_mm": 5.5')
        await expect(dead.locator(".conflict-change")).to_contain_text("based on version 1")
        await expect(dead.locator(".conflict-change")).to_contain_text('"status": "success"')
        await expect(dead.locator('button[data-action="retry"]')).to_have_count(0)

        await dead.locator('button[data-action="apply-anyway"]').click()
        await expect(dead).to_have_count(0, timeout=WAIT_MS)
        await expect(page.locator("#notice")).to_contain_text("Re-buffered 1 transaction")
        await settle(stack, worker)
        status = "SELECT status FROM executed_obs_units WHERE id = $1::uuid"
        assert await fetchval(stack.main_db.dsn(), status, unit["id"]) == "success"
        assert problems == [], problems
        await page.close()
