"""The client processes of ``bench.ws_fanout``: each connects its share of the WebSocket
monitors, records when every event reaches each of them and its own event loop's lag, and
reports back to the parent over a pipe."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bench.runner import run_async
from bench.ws_config import HEADLINE, STATES, ClientSpec


class Monitor:
    """One WebSocket monitor: the latency of every event it receives, by ``state:tx_id``."""

    def __init__(self, ws: ClientConnection, worker: int, published: dict[str, float]) -> None:
        self.ws = ws
        self.worker = worker
        self.published = published  # the event's ``at`` (s), shared by the process's monitors
        self.seen: dict[str, float] = {}
        self.duplicates = 0
        self.other_frames: Counter[str] = Counter()
        self.closed: str | None = None  # set when the server closed it or it broke
        self.closing = False  # set when we close it at the end

    async def listen(self) -> None:
        try:
            async for message in self.ws:
                now_ms = time.time() * 1000
                frame = orjson.loads(message)
                kind = frame.get("type")
                if kind == "event":
                    events = [frame["event"]]
                elif kind == "events":
                    # Several events ready at once share a frame; a batch larger than the
                    # hub's summary threshold arrives as counts, which completeness reports.
                    events = frame["events"]
                    if frame.get("summarized"):
                        self.other_frames["summarized"] += 1
                else:
                    self.other_frames[str(kind)] += 1
                    continue
                for event in events:
                    key = f"{event['state']}:{event['tx_id']}"
                    if key in self.seen:
                        self.duplicates += 1
                    else:
                        self.seen[key] = now_ms - event["at"]
                        self.published[key] = event["at"] / 1000
        except ConnectionClosed as exc:
            if not self.closing:
                self.closed = f"broken: {exc}"
            return
        if not self.closing:
            self.closed = f"closed by the server: {self.ws.close_code} {self.ws.close_reason}"


class LagMeter:
    """The client loop's own lag: how late a 10 ms sleep wakes up (wall time, lag in ms)."""

    INTERVAL_S = 0.01

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []

    async def run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.INTERVAL_S)
            late_ms = (time.perf_counter() - before - self.INTERVAL_S) * 1000
            self.samples.append((time.time(), max(0.0, late_ms)))


def monitor_process(spec: ClientSpec, conn: Connection) -> None:
    """Entry point of a client process (spawned): connect, report, record, collect."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us on Ctrl-C
    try:
        run_async(_monitors(spec, conn))
    except Exception as exc:
        with contextlib.suppress(OSError, ValueError):
            conn.send({"type": "error", "error": f"{type(exc).__name__}: {exc}"})
        raise


async def _monitors(spec: ClientSpec, conn: Connection) -> None:
    headers = {"Authorization": f"Bearer {spec.token}"}
    monitors: list[Monitor] = []
    listeners: list[asyncio.Task[None]] = []
    failures: list[str] = []
    extensions: Counter[str] = Counter()
    published: dict[str, float] = {}
    gate = asyncio.Semaphore(spec.connect_concurrency)

    async def open_one() -> None:
        async with gate:
            try:
                ws = await connect(
                    spec.ws_url,
                    additional_headers=headers,
                    compression=spec.compression,
                    proxy=None,
                    open_timeout=60,
                )
                hello = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
            except (OSError, TimeoutError, WebSocketException) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return
        if hello.get("type") != "hello" or not hello.get("events"):
            failures.append(f"unexpected first frame: {hello!r}"[:300])
            await ws.close()
            return
        monitor = Monitor(ws, int(hello["worker"]), published)
        monitors.append(monitor)
        listeners.append(asyncio.create_task(monitor.listen()))
        extensions[",".join(str(e.name) for e in ws.protocol.extensions) or "none"] += 1

    await asyncio.gather(*(open_one() for _ in range(spec.monitors)))
    # Long-lived objects out of the collector's way, and no cyclic collections while we
    # record (their pauses would be the client's, not the gateway's).
    gc.collect()
    gc.freeze()
    gc.disable()
    lag = LagMeter()
    lag_task = asyncio.create_task(lag.run())
    conn.send(
        {
            "type": "connected",
            "index": spec.index,
            "pid": os.getpid(),
            "monitors": len(monitors),
            "workers": dict(Counter(m.worker for m in monitors)),
            "failed": len(failures),
            "failures": failures[:5],
            "extensions": dict(extensions),
        }
    )
    command: dict[str, Any] = await asyncio.to_thread(conn.recv)
    if command.get("type") != "collect":
        return
    measured: list[str] = command["measured"]
    probe: dict[str, float] = command["probe"]
    expected = [f"{state}:{tx_id}" for tx_id in measured for state in command["states"]]

    def missing_count() -> int:
        return sum(1 for m in monitors for key in expected if key not in m.seen)

    deadline = time.monotonic() + float(command["wait_s"])
    while True:  # until every monitor holds every expected event, or the deadline
        if not missing_count() or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.5)
    lag_task.cancel()
    results = _client_results(spec, monitors, expected, probe, lag, command["window"], published)
    for monitor in monitors:
        monitor.closing = True
    with contextlib.suppress(Exception):
        async with asyncio.timeout(20):
            await asyncio.gather(*(m.ws.close() for m in monitors), return_exceptions=True)
    for task in listeners:
        task.cancel()
    conn.send(results)


def _client_results(
    spec: ClientSpec,
    monitors: list[Monitor],
    expected: list[str],
    probe: dict[str, float],
    lag: LagMeter,
    window: tuple[float, float],
    published: dict[str, float],
) -> dict[str, Any]:
    latency: dict[str, dict[int, list[float]]] = {s: {} for s in STATES}
    by_second: dict[int, list[float]] = {}  # headline latencies by second of the window
    after_redis: dict[str, list[float]] = {s: [] for s in STATES}
    spread: dict[str, tuple[float, float]] = {}
    missing: Counter[str] = Counter()
    missing_samples: list[str] = []
    for index, monitor in enumerate(monitors):
        for key in expected:
            state = key.partition(":")[0]
            value = monitor.seen.get(key)
            if value is None:
                missing[state] += 1
                if len(missing_samples) < 10:
                    missing_samples.append(f"client {spec.index} monitor {index}: {key}")
                continue
            latency[state].setdefault(monitor.worker, []).append(value)
            if state == HEADLINE:
                second = int(published[key] - window[0])
                by_second.setdefault(second, []).append(value)
            redis_ms = probe.get(key)
            if redis_ms is not None:
                after_redis[state].append(value - redis_ms)
            low, high = spread.get(key, (value, value))
            spread[key] = (min(low, value), max(high, value))
    start, end = window
    other: Counter[str] = Counter()
    for monitor in monitors:
        other.update(monitor.other_frames)
    return {
        "type": "results",
        "index": spec.index,
        "latency": latency,
        "after_redis": after_redis,
        "spread": spread,
        "by_second": by_second,
        "missing": dict(missing),
        "missing_samples": missing_samples,
        "duplicates": sum(m.duplicates for m in monitors),
        "other_frames": dict(other),
        "closed": [m.closed for m in monitors if m.closed is not None],
        "received": sum(len(m.seen) + m.duplicates for m in monitors),
        "lag_ms": [ms for at, ms in lag.samples if start <= at <= end],
    }
