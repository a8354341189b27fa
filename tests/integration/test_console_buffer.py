"""The operator console in headless Chromium against a real gateway: it shows a buffered
write become visible, retries a dead letter and applies a conflict anyway from the page,
and says the buffer is unavailable while Redis is down."""

from __future__ import annotations

import asyncio

from playwright.async_api import Browser, expect

from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.devstack.stack import Stack
from tests.integration.conftest import Tokens
from tests.integration.console_page import ARTIFACTS, WAIT_MS, open_console
from tests.support import client, fetchval, refused_on_main, serve, settle


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
