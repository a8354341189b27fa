"""The operator console's history charts: under a path prefix, across a reload, and none at
a main site (which keeps no buffer)."""

from __future__ import annotations

import asyncio

from playwright.async_api import Browser, Page, expect

from ccat_api.config import Settings
from tests.integration.conftest import Tokens
from tests.integration.console_page import ARTIFACTS, WAIT_MS, open_console
from tests.prefix_proxy import PrefixProxy
from tests.support import client, eventually, serve, serve_asgi, site_worker

PREFIX = "/ccat"


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
