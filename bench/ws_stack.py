"""The stack side of ``bench.ws_fanout``: its multi-worker gateway, what the gateway's log
says of its workers, and waiting for the site's buffer to drain."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

from redis.asyncio import Redis

from bench.runner import Clock, wait_settled
from bench.ws_config import SITE, FanoutConfig, SetupError
from ccat_api.buffering.keys import SiteKeys
from ccat_api.devstack.stack import ManagedProcess, Stack
from ccat_api.devstack.system import free_port, wait_port


def start_gateway(stack: Stack, config: FanoutConfig, clock: Clock) -> tuple[str, ManagedProcess]:
    """``ccat-api serve --workers N`` for the site, registered with the stack (so
    ``stack.down()`` stops it); returns once every worker logged that it is ready."""
    port = free_port()
    metrics_dir = stack.base_dir / "metrics-ws"
    metrics_dir.mkdir(exist_ok=True)
    overrides = {**stack.settings_overrides(SITE), "run_processor": False}
    gateway = ManagedProcess(
        f"gateway-{SITE}",
        [
            sys.executable, "-m", "ccat_api", "serve", "--host", "127.0.0.1",
            "--workers", str(config.workers), "--port", str(port),
        ],
        {**stack.env_for(overrides), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        stack.base_dir / f"gateway-{SITE}.log",
    )  # fmt: skip
    gateway.start()
    stack.gateways[SITE] = gateway
    stack.gateway_ports[SITE] = port
    if not wait_port(port, 30):
        raise SetupError(f"the gateway did not listen; see {gateway.log_file}")
    deadline = time.monotonic() + 60
    while len(ready := logged_pids(gateway.log_file, event="ready")) < config.workers:
        if time.monotonic() > deadline or not gateway.running():
            raise SetupError(
                f"{len(ready)} of {config.workers} workers ready; see {gateway.log_file}"
            )
        time.sleep(0.1)
    clock.say(f"gateway on port {port}: {config.workers} workers ready (pids {sorted(ready)})")
    return f"http://127.0.0.1:{port}", gateway


def logged_pids(log_file: Path, **fields: str) -> Counter[int]:
    """How many JSON log lines with these fields each process wrote."""
    found: Counter[int] = Counter()
    with contextlib.suppress(OSError):
        for line in log_file.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if all(record.get(k) == v for k, v in fields.items()):
                found[int(record["pid"])] += 1
    return found


def worker_pids(gateway: ManagedProcess) -> list[int]:
    assert gateway.process is not None
    try:
        children = Path(f"/proc/{gateway.process.pid}/task/{gateway.process.pid}/children")
        return [int(p) for p in children.read_text().split()]
    except OSError:
        return []


async def drained(redis: Redis, keys: SiteKeys, config: FanoutConfig) -> float:
    """With the processor: until every write is visible. Without: a pause for the events."""
    if config.processor:
        return await wait_settled(redis, keys, config.settle_timeout_s)
    await asyncio.sleep(1.0)
    return math.nan
