"""Metrics upkeep under several uvicorn workers: a worker that dies stops counting in the
merged live gauges once its replacement starts, and the metrics directory ``serve`` made
for its workers is removed when it stops."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect

from ccat_api.devstack.stack import ManagedProcess, Stack
from ccat_api.devstack.system import free_port, wait_port
from tests.integration.conftest import Tokens
from tests.integration.test_live_workers import logged_by
from tests.support import bearer, eventually

MAX_MONITORS = 40


async def test_a_killed_workers_monitors_stop_counting_and_the_metrics_dir_is_removed(
    stack: Stack, site_name: str, tokens: Tokens, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    overrides = {**stack.settings_overrides(site_name), "run_processor": False}
    env = {k: v for k, v in stack.env_for(overrides).items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    # serve makes its own metrics directory: under this test's temporary directory.
    env["TMPDIR"] = str(tmp_path)
    gateway = ManagedProcess(
        "gateway-2w",
        [sys.executable, "-m", "ccat_api", "serve", "--workers", "2", "--port", str(port)],
        env,
        tmp_path / "gateway.log",
    )
    gateway.start()
    monitors: list[ClientConnection] = []
    by_worker: dict[int, list[ClientConnection]] = {}
    try:
        assert wait_port(port, 30), gateway.log_file.read_text()
        metrics_dirs = await asyncio.to_thread(lambda: list(tmp_path.glob("ccat-metrics-*")))
        assert len(metrics_dirs) == 1

        async def workers_started(n: int) -> bool:
            return len(logged_by(gateway.log_file, event="ready")) >= n

        await eventually(lambda: workers_started(2), timeout_s=30)

        async def open_monitor() -> ClientConnection:
            ws = await connect(
                url.replace("http://", "ws://") + "/api/ws/transactions",
                additional_headers=bearer(tokens.observer),
            )
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
            by_worker.setdefault(hello["worker"], []).append(ws)
            return ws

        while len(by_worker) < 2 and len(monitors) < MAX_MONITORS:
            monitors += await asyncio.gather(*(open_monitor() for _ in range(8)))
        assert len(by_worker) == 2, f"all monitors landed on one worker: {by_worker.keys()}"
        assert await _connections(url, tokens) == len(monitors)

        victim, survivor = sorted(by_worker, key=lambda pid: len(by_worker[pid]))
        os.kill(victim, signal.SIGKILL)  # no shutdown: its lifespan cannot clean up
        # uvicorn replaces it; the replacement forgets the dead worker's live gauges.
        await eventually(lambda: workers_started(3), timeout_s=30)

        async def survivors_only() -> bool:
            return await _connections(url, tokens) == len(by_worker[survivor])

        await eventually(survivors_only, timeout_s=10)
    finally:
        for ws in monitors:
            await ws.close()
        gateway.stop()
    assert not await asyncio.to_thread(metrics_dirs[0].exists)


async def _connections(url: str, tokens: Tokens) -> float:
    async with httpx.AsyncClient(base_url=url, headers=bearer(tokens.observer)) as http:
        text = (await http.get("/metrics")).text
    found = re.search(r'^ccat_websocket_connections\{stream="transactions"\} (\S+)$', text, re.M)
    assert found is not None, text
    return float(found.group(1))
