"""A WebSocket monitor of a real gateway, as the live-stream tests open and read one: frames,
the transaction events they carry, the close code, and stream settings fast enough to
watch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ccat_api.config import Settings
from tests.support import bearer

WAIT_S = 15.0


def ws_url(base_url: str, path: str) -> str:
    return base_url.replace("http://", "ws://", 1) + path


@asynccontextmanager
async def monitor(
    base_url: str, path: str, token: str | None = None, **options: Any
) -> AsyncIterator[ClientConnection]:
    headers = bearer(token) if token else {}
    async with connect(ws_url(base_url, path), additional_headers=headers, **options) as ws:
        yield ws


async def frame(ws: ClientConnection, timeout_s: float = WAIT_S) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
    return decoded


async def frame_where(ws: ClientConnection, predicate: Any, timeout_s: float = WAIT_S) -> Any:
    """Read frames until one matches (bounded); the ones before it are skipped."""
    async with asyncio.timeout(timeout_s):
        while True:
            got = await frame(ws, timeout_s)
            if predicate(got):
                return got


def events_in(f: dict[str, Any]) -> list[dict[str, Any]]:
    """The transaction events a frame carries (``event``: one; ``events``: several)."""
    if f["type"] == "event":
        return [f["event"]]
    if f["type"] == "events":
        events: list[dict[str, Any]] = f["events"]
        return events
    return []


async def event_where(ws: ClientConnection, predicate: Any, timeout_s: float = WAIT_S) -> Any:
    """Read events until one matches (bounded); the ones before it are skipped."""
    async with asyncio.timeout(timeout_s):
        while True:
            for event in events_in(await frame(ws, timeout_s)):
                if predicate(event):
                    return event


async def close_code(ws: ClientConnection, timeout_s: float = WAIT_S) -> int | None:
    """Read until the server closes; the code it sent."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    raise AssertionError("unreachable")


def live_settings(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(
        update={"live_status_interval_s": 0.2, "live_overview_interval_s": 0.5, **changes}
    )
