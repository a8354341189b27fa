"""The writes of ``bench.ws_fanout``: an open loop of ``POST /executed_obs_units/start``
over a few httpx clients, and what it recorded (the transactions the monitors must see)."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.ws_config import START_BODY, START_PATH, stats


@dataclass
class WriteLog:
    tx_ids: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sent: int = 0
    elapsed_s: float = 0.0
    max_launch_lag_ms: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "ok": len(self.tx_ids),
            "errors": len(self.errors),
            "error_samples": self.errors[:5],
            "elapsed_s": round(self.elapsed_s, 2),
            "achieved_per_s": round(len(self.tx_ids) / self.elapsed_s, 2)
            if self.elapsed_s
            else math.nan,
            "post_ms": stats(self.latencies_ms),
            "max_launch_lag_ms": round(self.max_launch_lag_ms, 2),
        }


async def write_load(
    url: str, token: str, *, rate_per_s: float, duration_s: float, writers: int
) -> WriteLog:
    """Open loop: one POST every 1/rate s on a fixed grid, round-robin over ``writers``
    httpx clients; latency counted from each request's scheduled start."""
    log = WriteLog()
    clients = [
        httpx.AsyncClient(
            base_url=url,
            headers={"authorization": f"Bearer {token}"},
            timeout=10.0,
            trust_env=False,
        )
        for _ in range(writers)
    ]
    tasks: set[asyncio.Task[None]] = set()

    async def post(client: httpx.AsyncClient, scheduled: float) -> None:
        try:
            response = await client.post(START_PATH, json=START_BODY)
        except httpx.HTTPError as exc:
            log.errors.append(f"{type(exc).__name__}: {exc}")
            return
        if response.status_code != 201:
            log.errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            return
        log.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
        log.tx_ids.append(response.json()["tx_id"])

    try:
        t0 = time.perf_counter() + 0.05
        for i in range(int(rate_per_s * duration_s)):
            scheduled = t0 + i / rate_per_s
            wait_s = scheduled - time.perf_counter()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            else:
                log.max_launch_lag_ms = max(log.max_launch_lag_ms, -wait_s * 1000)
            log.sent += 1
            task = asyncio.create_task(post(clients[i % writers], scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        log.elapsed_s = max(time.perf_counter() - t0, duration_s)
    finally:
        for client in clients:
            await client.aclose()
    return log
