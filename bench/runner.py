"""What each benchmark's entry point (``bench.run``, ``bench.ws_fanout``) runs on: the
repository's root, a progress clock, the event loop, waiting for a site's buffer to settle
and the stack's logs kept."""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from redis.asyncio import Redis

from ccat_api.buffering.keys import SiteKeys
from ccat_api.devstack.stack import Stack

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent


class Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """uvloop when available (as uvicorn uses), so the load generators cost the machine (and
    the server under test) less CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


async def wait_settled(redis: Redis, keys: SiteKeys, timeout_s: float) -> float:
    """Until the stream is empty and nothing awaits the replica; seconds taken (NaN: never)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.xlen(keys.stream)
            pipe.zcard(keys.applied)
            waiting, unseen = await pipe.execute()
        if waiting == 0 and unseen == 0:
            return time.perf_counter() - started
        await asyncio.sleep(0.05)
    return math.nan


def keep_logs(stack: Stack, directory: Path) -> None:
    """Copy the stack's process logs (gateways, WAN, PostgreSQL, Redis) out of its temporary
    directory, which stack.down() removes."""
    with contextlib.suppress(OSError):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
        for log in stack.base_dir.rglob("*.log"):
            shutil.copy2(log, directory / log.name)
