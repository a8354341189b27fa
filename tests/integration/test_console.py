"""The operator console in headless Chromium against a real gateway: it signs in, shows a
buffered write become visible, and retries a dead letter from the page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.support import client, refused_on_main, serve

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking switches Chromium keeps dialing out, and this
# machine's closed network refuses it noisily.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WAIT_MS = 15_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def open_console(browser: Browser, url: str, token: str) -> tuple[Page, list[str]]:
    """The console, signed in with ``token``; the list collects the page's JS errors."""
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
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
