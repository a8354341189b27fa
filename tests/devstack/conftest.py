"""Fixtures of the WAN simulator's tests (test_wan_*.py): an echoing upstream, a simulator
in front of it, and client connections that are always torn down."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ccat_api.devstack.wan import WanSimulator
from tests.devstack.wan_loopback import Clients, Upstream, echo, running_sim, serving


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with serving(echo) as up:
        yield up


@pytest.fixture
async def wan(upstream: Upstream) -> AsyncIterator[WanSimulator]:
    async with running_sim(upstream.port) as sim:
        yield sim


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    opened = Clients()
    try:
        yield opened
    finally:
        await opened.close_all()
