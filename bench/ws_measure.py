"""The measurement of ``bench.ws_fanout``: connect the monitors and the probe, warm up,
write for the measured window while the CPU is metered, let the buffer drain, and collect
what every monitor received."""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import subprocess
import time
from collections import Counter
from typing import Any

from bench.load import percentile
from bench.runner import Clock
from bench.sysinfo import CpuMeter
from bench.ws_children import Run, spawn, split, start_spies
from bench.ws_config import (
    SITE,
    START_PATH,
    WS_PATH,
    ClientSpec,
    FanoutConfig,
    SetupError,
    expected_states,
)
from bench.ws_cpu import CpuTimeline
from bench.ws_monitors import monitor_process
from bench.ws_probe import probe_process
from bench.ws_stack import drained, logged_pids
from bench.ws_summary import summarise
from bench.ws_writes import write_load
from ccat_api.buffering.keys import SiteKeys
from ccat_api.devstack.stack import ManagedProcess, Stack
from ccat_api.runtime import make_redis


async def measure(
    stack: Stack,
    config: FanoutConfig,
    url: str,
    gateway: ManagedProcess,
    tokens: tuple[str, str],
    run: Run,
    clock: Clock,
) -> dict[str, Any]:
    writer_token, token = tokens
    keys = SiteKeys(SITE)
    ctx = multiprocessing.get_context("spawn")
    probe = spawn(run, "probe", probe_process, (stack.redis.url, keys.events), ctx)
    await probe.receive(60)
    ws_url = url.replace("http://", "ws://") + WS_PATH
    clients = [
        spawn(
            run,
            f"client-{i}",
            monitor_process,
            (ClientSpec(i, ws_url, token, n, config.compression, config.connect_concurrency),),
            ctx,
        )
        for i, n in enumerate(split(config.monitors, config.client_processes))
    ]  # fmt: skip
    started = time.perf_counter()
    connected = [await c.receive(300) for c in clients]
    per_worker: Counter[int] = Counter()
    extensions: Counter[str] = Counter()
    for answer in connected:
        per_worker.update({int(k): v for k, v in answer["workers"].items()})
        extensions.update(answer["extensions"])
    total = sum(a["monitors"] for a in connected)
    clock.say(
        f"{total} monitors connected in {time.perf_counter() - started:.1f}s over"
        f" {len(clients)} client processes; per worker: "
        + ", ".join(f"pid {pid} {n}" for pid, n in sorted(per_worker.items()))
        + f"; extensions: {dict(extensions)}"
    )
    failed = sum(a["failed"] for a in connected)
    if total != config.monitors:
        samples = [f for a in connected for f in a["failures"]][:5]
        raise SetupError(f"{failed} of {config.monitors} monitors failed to connect: {samples}")

    redis = make_redis(stack.redis.url)
    try:
        if config.warmup_s > 0:
            warm = await write_load(
                url, writer_token, rate_per_s=config.rate_per_s, duration_s=config.warmup_s,
                writers=config.writers,
            )  # fmt: skip
            if warm.errors or not warm.tx_ids:
                raise SetupError(f"warm-up writes failed: {warm.errors[:3]}")
            settled = await drained(redis, keys, config)
            clock.say(f"warm-up: {len(warm.tx_ids)} writes, drained in {settled:.1f}s")

        workers = sorted(per_worker)
        pids = {"gateway": gateway.process.pid if gateway.process else -1}
        pids.update({f"worker-{pid}": pid for pid in workers})
        if stack.processor is not None and stack.processor.process is not None:
            pids["processor"] = stack.processor.process.pid
        if stack.redis.process is not None:
            pids["redis"] = stack.redis.process.pid
        for label, cluster in (("main_pg", stack.main_db), ("replica_pg", stack.replica)):
            with contextlib.suppress(OSError, ValueError, IndexError):
                pids[label] = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
        if stack.wan_process is not None and stack.wan_process.process is not None:
            pids["wan"] = stack.wan_process.process.pid
        for child in [probe, *clients]:
            if child.process.pid is not None:
                pids[child.name] = child.process.pid
        spy_files = start_spies(config, workers, run)

        clock.say(
            f"measuring: {config.rate_per_s:g} writes/s for {config.duration_s:g}s,"
            f" {config.monitors} monitors"
        )
        meter = CpuMeter(pids)
        timeline = CpuTimeline(pids)
        meter.start()
        timeline.start()
        window_start = time.time()
        try:
            writes = await write_load(
                url, writer_token, rate_per_s=config.rate_per_s, duration_s=config.duration_s,
                writers=config.writers,
            )  # fmt: skip
        finally:
            window_end = time.time()
            cpu_by_second = timeline.stop()
        cpu_s = meter.stop()
        elapsed_s = window_end - window_start
        clock.say(
            f"  {len(writes.tx_ids)} writes ok, {len(writes.errors)} failed;"
            f" POST p50 {percentile(writes.latencies_ms, 50):.1f} ms,"
            f" p99 {percentile(writes.latencies_ms, 99):.1f} ms"
        )
        settled_s = await drained(redis, keys, config)
        if config.processor:
            clock.say(f"  buffer drained (all visible) {settled_s:.1f}s after the last write")
        if math.isnan(settled_s):
            clock.say(f"  WARNING: the buffer did not drain within {config.settle_timeout_s:g}s")
        dead = int(await redis.zcard(keys.dead))
    finally:
        await redis.aclose()
    for spy in run.spies:
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.wait(30)

    probe.conn.send({"type": "collect"})
    probe_seen: dict[str, float] = (await probe.receive(60))["seen"]
    measured = set(writes.tx_ids)
    probe_measured = {k: v for k, v in probe_seen.items() if k.partition(":")[2] in measured}
    for client in clients:
        client.conn.send(
            {
                "type": "collect",
                "measured": writes.tx_ids,
                "probe": probe_measured,
                "window": (window_start, window_end),
                "wait_s": config.complete_timeout_s,
                "states": expected_states(config),
            }
        )
    answers = [await c.receive(config.complete_timeout_s + 120) for c in clients]
    for child in [probe, *clients]:
        child.process.join(30)

    return summarise(
        config=config,
        writes=writes,
        answers=answers,
        probe_seen=probe_measured,
        per_worker=per_worker,
        extensions=extensions,
        cpu_s=cpu_s,
        machine_share=meter.machine_share,
        cpu_by_second=cpu_by_second,
        elapsed_s=elapsed_s,
        settled_s=settled_s,
        dead=dead,
        writes_by_worker=logged_pids(gateway.log_file, method="POST", route=START_PATH),
        spy_files=spy_files,
    )
