"""The operator console in headless Chromium: the browser's settings, where screenshots go,
and a console page signed in with a token (the ``browser`` fixture is in conftest.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import Browser, Page, expect

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking switches Chromium keeps dialing out, and this
# machine's closed network refuses it noisily.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WAIT_MS = 15_000


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
