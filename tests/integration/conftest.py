"""One real two-site stack per test session: main PostgreSQL, a streaming replica (through
the WAN simulator), Redis with AOF. Each test gets its own site name, so its Redis keys and
transactions are its own; gateways run in-process behind real uvicorn servers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from playwright.async_api import Browser, async_playwright

from ccat_api.auth.tokens import issue_service_token
from ccat_api.buffering.worker import SiteWorker
from ccat_api.config import Settings
from ccat_api.db.engines import PrimaryDatabase, make_engine
from ccat_api.db.models import Role
from ccat_api.devstack.stack import Stack
from tests.integration.console_page import CHROMIUM, CHROMIUM_ARGS
from tests.support import running_stack, site_worker


@dataclass(frozen=True)
class Tokens:
    """One API token per seeded role, each of its own service account."""

    admin: str
    operator: str
    observer: str
    viewer: str
    service: str


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with running_stack() as started:
        yield started


@pytest.fixture(scope="session")
def tokens(stack: Stack) -> Tokens:
    async def create() -> Tokens:
        db = PrimaryDatabase(
            make_engine(stack.main_db.url(), pool_size=1, connect_timeout_s=5, application_name="t")
        )
        try:
            made = {
                role: (await issue_service_token(db, f"test-{role.value}", role.value)).plaintext
                for role in Role
            }
        finally:
            await db.dispose()
        return Tokens(**{role.value: token for role, token in made.items()})

    made = asyncio.run(create())
    stack.wait_replica_caught_up()
    return made


@pytest.fixture(autouse=True)
def healthy_wan(stack: Stack) -> Iterator[None]:
    """Whatever a test does to the WAN, the next one starts with it up and fast."""
    yield
    stack.wan.up()
    stack.wan.set_delay(0)


@pytest.fixture
def site_name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def secondary_settings(stack: Stack, site_name: str) -> Settings:
    return Settings.model_validate(
        {**stack.settings_overrides(site_name), "run_processor": False, "token_cache_ttl_s": 0}
    )


@pytest.fixture
def main_settings(stack: Stack) -> Settings:
    return Settings.model_validate(stack.settings_overrides("main", secondary=False))


@pytest.fixture
async def worker(secondary_settings: Settings) -> AsyncIterator[SiteWorker]:
    async with site_worker(secondary_settings) as built:
        yield built


@pytest.fixture
def fresh_obs_unit(stack: Stack) -> int:
    """An obs unit of this test's own (created on main, replicated), so list reads filtered
    by it see only this test's records."""
    new_id = stack.main_db.psql(
        "INSERT INTO obs_units (name, observing_program_id, instrument_id)"
        f" VALUES ('test-{uuid.uuid4().hex[:12]}', 1, 1) RETURNING id",
        user="ccat",
    )
    stack.wait_replica_caught_up()
    return int(new_id.splitlines()[0])


# The console tests' (test_console_*.py) headless Chromium.
@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
