"""Two uvicorn workers of one gateway, monitors connected to each: every event reaches every
monitor, whichever worker took the write, and metrics are merged across the workers."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from ccat_api.devstack.stack import ManagedProcess, Stack
from ccat_api.devstack.system import free_port, wait_port
from tests.integration.conftest import Tokens
from tests.integration.monitors import events_in
from tests.support import bearer, eventually

WRITES = 20
MAX_MONITORS = 40


@pytest.fixture
def two_workers(stack: Stack, site_name: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    overrides = {**stack.settings_overrides(site_name), "run_processor": False}
    gateway = ManagedProcess(
        "gateway-2w",
        [sys.executable, "-m", "ccat_api", "serve", "--workers", "2", "--port", str(port)],
        {**stack.env_for(overrides), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")},
        tmp_path / "gateway.log",
    )
    (tmp_path / "metrics").mkdir()
    gateway.start()
    try:
        assert wait_port(port, 30), gateway.log_file.read_text()
        yield f"http://127.0.0.1:{port}", gateway.log_file
    finally:
        gateway.stop()


def logged_by(log_file: Path, **fields: str) -> set[int]:
    """The worker pids that wrote a JSON log line with these fields."""
    pids = set()
    for line in log_file.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if all(record.get(k) == v for k, v in fields.items()):
            pids.add(record["pid"])
    return pids


async def test_events_from_writes_on_either_worker_reach_monitors_on_both(
    two_workers: tuple[str, Path], tokens: Tokens
) -> None:
    url, log_file = two_workers
    ws_url = url.replace("http://", "ws://") + "/api/ws/transactions"
    monitors: list[ClientConnection] = []
    workers: dict[int, int] = {}

    async def both_ready() -> bool:
        return len(logged_by(log_file, event="ready")) == 2

    await eventually(both_ready, timeout_s=30)

    async def open_monitor() -> ClientConnection:
        ws = await connect(ws_url, additional_headers=bearer(tokens.observer))
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        workers[hello["worker"]] = workers.get(hello["worker"], 0) + 1
        return ws

    try:
        # The kernel hands each new connection to one worker, to whichever is idle: connect
        # in bursts until both serve some.
        while len(workers) < 2 and len(monitors) < MAX_MONITORS:
            monitors += await asyncio.gather(*(open_monitor() for _ in range(8)))
        assert len(workers) == 2, f"all monitors landed on one worker: {workers}"

        tx_ids = []
        # Fresh connections, several at a time, so the writes too are spread over the workers.
        async with httpx.AsyncClient(
            base_url=url,
            headers=bearer(tokens.operator),
            limits=httpx.Limits(max_keepalive_connections=0),
            timeout=10,
        ) as http:
            for _ in range(WRITES // 4):
                answers = await asyncio.gather(
                    *(
                        http.post("/executed_obs_units/start", json={"obs_unit_id": 1})
                        for _ in range(4)
                    )
                )
                for answer in answers:
                    assert answer.status_code == 201, answer.text
                    tx_ids.append(answer.json()["tx_id"])

        async def buffered_events(ws: ClientConnection) -> list[str]:
            seen: list[str] = []
            async with asyncio.timeout(15):
                while len(seen) < WRITES:
                    seen += [
                        e["tx_id"]
                        for e in events_in(json.loads(await ws.recv()))
                        if e["state"] == "buffered"
                    ]
            return seen

        everyone = await asyncio.gather(*(buffered_events(ws) for ws in monitors))
        assert sorted(everyone[0]) == sorted(tx_ids)
        # Every monitor, on either worker, saw the same events in the same (acceptance) order.
        assert all(seen == everyone[0] for seen in everyone)
        writers = logged_by(log_file, method="POST", route="/executed_obs_units/start")
        assert writers == set(workers), f"writes served by {writers}, monitors by {set(workers)}"

        # Whichever worker answers the scrape reports the requests of both.
        async with httpx.AsyncClient(base_url=url, headers=bearer(tokens.observer)) as http:
            text = (await http.get("/metrics")).text
        count = re.search(
            r'^ccat_http_request_duration_seconds_count\{method="POST",'
            r'route="/executed_obs_units/start",status="201"\} (\S+)$',
            text,
            re.M,
        )
        assert count is not None
        assert float(count.group(1)) == WRITES
        connections = re.search(
            r'^ccat_websocket_connections\{stream="transactions"\} (\S+)$', text, re.M
        )
        assert connections is not None
        assert float(connections.group(1)) == len(monitors)
    finally:
        for ws in monitors:
            await ws.close()
