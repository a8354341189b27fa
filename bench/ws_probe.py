"""The probe process of ``bench.ws_fanout``: one plain pub/sub subscription of its own, so
monitor latency can be split into the part before Redis delivered an event and the part
after it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import time
from multiprocessing.connection import Connection

import orjson

from bench.runner import run_async
from ccat_api.runtime import make_redis


def probe_process(redis_url: str, channel: str, conn: Connection) -> None:
    """Entry point of the probe (spawned): when Redis delivered each event, by key."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run_async(_probe(redis_url, channel, conn))
    except Exception as exc:
        with contextlib.suppress(OSError, ValueError):
            conn.send({"type": "error", "error": f"{type(exc).__name__}: {exc}"})
        raise


async def _probe(redis_url: str, channel: str, conn: Connection) -> None:
    redis = make_redis(redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel)
    seen: dict[str, float] = {}

    async def pump() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            now_ms = time.time() * 1000
            decoded = orjson.loads(message["data"])
            # A replayed batch is published as one array of its events.
            for event in decoded if isinstance(decoded, list) else [decoded]:
                seen.setdefault(f"{event['state']}:{event['tx_id']}", now_ms - event["at"])

    task = asyncio.create_task(pump())
    gc.collect()
    gc.freeze()
    gc.disable()
    conn.send({"type": "connected", "pid": os.getpid()})
    await asyncio.to_thread(conn.recv)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    conn.send({"type": "results", "seen": seen})
    with contextlib.suppress(Exception):
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await redis.aclose()
