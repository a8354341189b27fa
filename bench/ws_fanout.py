"""WebSocket event fan-out latency with 500 connected monitors: ``python -m bench.ws_fanout``.

What is measured: how long a transaction's state change takes to reach every WebSocket
monitor (``/api/ws/transactions``) of a secondary-site gateway served by several uvicorn
workers, and whether every monitor receives every event.

How the system delivers an event: the accept Lua script (and, later, the processor's and the
LSN tracker's scripts) PUBLISHes ``{"tx_id", "state", "seq", "at"}`` on the Redis channel
``ccat:{site}:events``. Each gateway worker holds ONE pub/sub subscription and puts the frame
in the queue of each of its local monitors; one task per monitor sends it.

The setup, as production runs it: the real local stack (main PostgreSQL, a streaming
replica, Redis with AOF ``appendfsync always``, the WAN simulator, 100 ms one way by default),
a secondary gateway started as ``ccat-api serve --workers 2`` and the site's processor
(``ccat-api process``) as its own process, so the buffer drains while monitors watch: every
write then yields three events (``buffered``, ``applied``, ``visible``), as it does at the
observatory, and the processor's and the replica's work competes for the cores.

The load: 500 real ``websockets`` clients (authenticated with ``Authorization: Bearer``),
spread over 4 client processes (multiprocessing, one uvloop event loop each, the cyclic
garbage collector off so the clients' own pauses are not measured), and
``POST /executed_obs_units/start`` at a steady 20 writes/s for 25 s from this process
(httpx, a few connections, so the kernel spreads the writes over the workers), after a 3 s
warm-up whose events are left out.

The clock: latency = the monitor's wall clock when its ``recv`` returns the frame minus the
event's ``at``. Both are ``time.time()`` on the same machine (``at`` is taken by the gateway
worker that accepted the write, just before it runs the accept script; by the processor or
the tracker for ``applied``/``visible``), so no clock offset enters. ``at`` is truncated to
whole milliseconds, so every figure is up to 1 ms high. The figure therefore spans everything
a monitor waits for: the accept script and its AOF fsync (Redis sends pub/sub messages only
after the fsync of the write that published them), the worker's subscription, its fan-out to
its monitors, the WebSocket send (uncompressed: the clients offer permessage-deflate, as
browsers do, and the gateway declines it, see ``ccat_api/cli.py``), the loopback and the
client's own parsing.

To say where the time goes, a probe process holds one plain pub/sub subscription of its own
(redis-py, as the gateway's hub uses) and records when Redis delivered each event: monitor
latency minus the probe's latency of the same event is the part spent after Redis, in the
gateway and the clients. Each client process also measures its own event-loop lag (a 10 ms
ticker), so a load generator that falls behind would show. The CPU each process spent in the
measured window is reported, overall and second by second (from a thread, with the p99 of
each second's events beside it); "untracked" is what the machine spent beyond the processes
we know of, so other work on a shared machine shows as such.

On a 2-core machine everything shares the cores, and the clients' CPU (about as much as the
gateway's) is CPU the gateway does not get: the figures are pessimistic for a gateway whose
monitors run elsewhere, and noisy (run it more than once). Diagnostic flags:
``--compression none`` (monitors do not even offer permessage-deflate), ``--no-processor`` (only
``buffered`` events, a third of the frames), ``--py-spy BIN`` (``py-spy record`` of each
worker during the window, raw collapsed stacks next to the JSON).

The headline figure is for the ``buffered`` events, the one every accepted write publishes
from the accept script; ``applied`` and ``visible`` events (published in bursts, one message
per replayed batch) are reported beside it, and the verdict holds the target (p99 <= 100 ms)
against both the ``buffered`` events and every event of every state.
Completeness: after the writes, the buffer is left to drain until every transaction is
visible, then each monitor must hold all three events of every measured write; missing and
duplicate deliveries, ``resync`` frames and monitors closed by the server are counted.

The report goes to stdout and ``bench/results/ws_fanout.json``, the stack's logs to
``bench/results/ws_fanout_logs/``. Exit status: 0 with every delivery made, whether or not
the target is met (a benchmark, not a test); 1 when deliveries were lost; 2 when the setup
or the writes failed; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Coroutine, Iterable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import httpx
import orjson
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bench.load import percentile
from bench.report import Goal, Row, table
from bench.sysinfo import CpuMeter, fsync_probe, machine, machine_cpu_s, process_cpu_s
from ccat_api.auth.tokens import issue_service_token
from ccat_api.buffering.keys import SiteKeys
from ccat_api.db.engines import PrimaryDatabase, make_engine
from ccat_api.db.models import Role
from ccat_api.devstack.stack import ManagedProcess, Stack, StackConfig
from ccat_api.devstack.system import free_port, wait_port
from ccat_api.runtime import make_redis

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILE = REPO_ROOT / "bench" / "results" / "ws_fanout.json"
SITE = "bench-ws"
START_PATH = "/executed_obs_units/start"
START_BODY = {"obs_unit_id": 1}
WS_PATH = "/api/ws/transactions"
STATES = ("buffered", "applied", "visible")
HEADLINE = "buffered"
GOAL_P99_MS = Goal("<=", 100.0)
# Monitors must not slow instruments: a write's p99 with 500 monitors connected (issue 18).
GOAL_POST_P99_MS = Goal("<=", 10.0)

EXIT_OK = 0
EXIT_LOST = 1
EXIT_SETUP = 2
EXIT_INTERRUPTED = 130


class SetupError(RuntimeError):
    """The benchmark could not be set up or run as planned (not a latency figure)."""


@dataclass(frozen=True)
class FanoutConfig:
    monitors: int = 500
    rate_per_s: float = 20.0
    duration_s: float = 25.0
    warmup_s: float = 3.0
    workers: int = 2
    client_processes: int = 4
    writers: int = 4  # httpx clients (connections) the writes go round-robin over
    wan_delay_ms: int = 100  # one way
    processor: bool = True
    compression: str | None = "deflate"
    connect_concurrency: int = 20  # handshakes in flight per client process
    settle_timeout_s: float = 120.0  # for the buffer to drain after the writes
    complete_timeout_s: float = 15.0  # for the last deliveries once it has drained
    py_spy: str | None = None  # a py-spy binary: record each worker during the window


@dataclass(frozen=True)
class ClientSpec:
    """What one client process connects: ``monitors`` monitors to ``ws_url``."""

    index: int
    ws_url: str
    token: str
    monitors: int
    compression: str | None
    connect_concurrency: int


class Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)


def _run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """uvloop when available (as uvicorn uses), so the clients cost the machine less CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


# --- the client processes: monitors ---------------------------------------------------------


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
        _run_async(_monitors(spec, conn))
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


# --- the probe process: one plain subscription ----------------------------------------------


def probe_process(redis_url: str, channel: str, conn: Connection) -> None:
    """Entry point of the probe (spawned): when Redis delivered each event, by key."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _run_async(_probe(redis_url, channel, conn))
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


# --- the parent: stack, gateway, writes -----------------------------------------------------


@dataclass
class Child:
    name: str
    process: BaseProcess
    conn: Connection

    async def receive(self, timeout_s: float) -> dict[str, Any]:
        # Polls from a thread; ``given_up`` ends it at once when we are cancelled (Ctrl-C),
        # so the loop's shutdown does not wait for the timeout.
        given_up = threading.Event()

        def wait() -> dict[str, Any]:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and not given_up.is_set():
                if self.conn.poll(0.2):
                    message: dict[str, Any] = self.conn.recv()
                    return message
                if not self.process.is_alive():
                    raise SetupError(f"{self.name} exited ({self.process.exitcode})")
            raise SetupError(f"{self.name} did not answer within {timeout_s:.0f}s")

        try:
            message = await asyncio.to_thread(wait)
        except asyncio.CancelledError:
            given_up.set()
            raise
        except EOFError as exc:
            raise SetupError(f"{self.name} closed its pipe ({self.process.exitcode})") from exc
        if message.get("type") == "error":
            raise SetupError(f"{self.name} failed: {message['error']}")
        return message

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


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


def issue_tokens(stack: Stack) -> tuple[str, str]:
    """An operator token for the writes and an observer token (read:buffer) for monitors."""

    async def make() -> tuple[str, str]:
        db = PrimaryDatabase(
            make_engine(
                stack.main_db.url(), pool_size=1, connect_timeout_s=5, application_name="bench"
            )
        )
        try:
            writer = await issue_service_token(db, "bench-ws-writer", Role.OPERATOR.value)
            watcher = await issue_service_token(db, "bench-ws-monitor", Role.OBSERVER.value)
        finally:
            await db.dispose()
        return writer.plaintext, watcher.plaintext

    return asyncio.run(make())


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


async def drained(redis: Redis, keys: SiteKeys, config: FanoutConfig) -> float:
    """With the processor: until every write is visible. Without: a pause for the events."""
    if config.processor:
        return await wait_settled(redis, keys, config.settle_timeout_s)
    await asyncio.sleep(1.0)
    return math.nan


def expected_states(config: FanoutConfig) -> tuple[str, ...]:
    """The events each write yields: all three while the processor drains the buffer."""
    return STATES if config.processor else (HEADLINE,)


def stats(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50": round(percentile(values, 50), 2),
        "p90": round(percentile(values, 90), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values, default=math.nan), 2),
    }


BUSY_KINDS = ("user", "nice", "system", "irq", "softirq")


def _top_level(name: str) -> bool:
    """Processes whose CPU is not already counted in another one's (workers are in the
    gateway's, as its children)."""
    return not name.startswith("worker-")


def untracked_cores(cpu_s: dict[str, float], share: dict[str, float], elapsed_s: float) -> float:
    """Cores the machine kept busy beyond the processes we know (other work on the box, and
    kernel time not charged to a process, such as part of loopback softirq)."""
    cores = os.cpu_count() or 1
    busy = sum(share.get(kind, 0.0) for kind in BUSY_KINDS) * cores
    tracked = sum(s for who, s in cpu_s.items() if _top_level(who)) / elapsed_s
    return busy - tracked


class CpuTimeline:
    """Once a second, from a thread (so a busy event loop does not delay it): how many cores
    the machine, the gateway, the monitor clients and everything untracked kept busy."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = {who: pid for who, pid in pids.items() if _top_level(who)}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-timeline", daemon=True)
        self.seconds: list[dict[str, float]] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[dict[str, float]]:
        self._stop.set()
        self._thread.join(5)
        return self.seconds

    def _sample(self) -> tuple[float, dict[str, float], dict[str, float]]:
        spent = {who: process_cpu_s(pid) for who, pid in self._pids.items()}
        spent["bench"] = time.process_time()
        return time.monotonic(), spent, machine_cpu_s()

    def _run(self) -> None:
        cores = os.cpu_count() or 1
        at, spent, machine_s = self._sample()
        while not self._stop.wait(1.0):
            now, spent_now, machine_now = self._sample()
            wall = now - at
            delta = {
                who: (spent_now[who] - spent[who]) / wall
                for who in spent_now
                if not math.isnan(spent_now[who] - spent[who])
            }
            all_s = {k: machine_now[k] - machine_s.get(k, 0.0) for k in machine_now}
            total = sum(all_s.values()) or 1.0
            busy = cores * sum(all_s.get(kind, 0.0) for kind in BUSY_KINDS) / total
            self.seconds.append(
                {
                    "busy": round(busy, 2),
                    "gateway": round(delta.get("gateway", math.nan), 2),
                    "clients": round(
                        sum(v for who, v in delta.items() if who.startswith("client-")), 2
                    ),
                    "untracked": round(busy - sum(delta.values()), 2),
                }
            )
            at, spent, machine_s = now, spent_now, machine_now


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


@dataclass
class Run:
    """Everything one run started, so the caller can stop it whatever happened."""

    children: list[Child] = field(default_factory=list)
    spies: list[subprocess.Popen[bytes]] = field(default_factory=list)


def _spawn(
    run: Run,
    name: str,
    target: Any,
    args: tuple[Any, ...],
    ctx: multiprocessing.context.SpawnContext,
) -> Child:
    parent_end, child_end = ctx.Pipe()
    process = ctx.Process(target=target, args=(*args, child_end), name=name, daemon=True)
    process.start()
    child_end.close()
    child = Child(name, process, parent_end)
    run.children.append(child)
    return child


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
    probe = _spawn(run, "probe", probe_process, (stack.redis.url, keys.events), ctx)
    await probe.receive(60)
    ws_url = url.replace("http://", "ws://") + WS_PATH
    clients = [
        _spawn(
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


def start_spies(config: FanoutConfig, workers: list[int], run: Run) -> list[str]:
    """py-spy record of each worker for the measured window (raw collapsed stacks)."""
    if not config.py_spy:
        return []
    files = []
    for pid in workers:
        out = RESULTS_FILE.parent / f"ws_fanout_pyspy_{pid}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        run.spies.append(
            subprocess.Popen(
                [
                    config.py_spy, "record", "--pid", str(pid), "--rate", "100",
                    "--duration", str(math.ceil(config.duration_s)), "--format", "raw",
                    "--nonblocking", "--output", str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        files.append(str(out))
    return files


def summarise(
    *,
    config: FanoutConfig,
    writes: WriteLog,
    answers: list[dict[str, Any]],
    probe_seen: dict[str, float],
    per_worker: Counter[int],
    extensions: Counter[str],
    cpu_s: dict[str, float],
    machine_share: dict[str, float],
    cpu_by_second: list[dict[str, float]],
    elapsed_s: float,
    settled_s: float,
    dead: int,
    writes_by_worker: Counter[int],
    spy_files: list[str],
) -> dict[str, Any]:
    latency: dict[str, list[float]] = {s: [] for s in STATES}
    by_worker: dict[str, dict[int, list[float]]] = {s: {} for s in STATES}
    after_redis: dict[str, list[float]] = {s: [] for s in STATES}
    spread: dict[str, tuple[float, float]] = {}
    missing: Counter[str] = Counter()
    other: Counter[str] = Counter()
    samples: list[str] = []
    closed: list[str] = []
    lag: list[float] = []
    by_second: dict[int, list[float]] = {}
    duplicates = received = 0
    for answer in answers:
        for state in STATES:
            for worker, values in answer["latency"][state].items():
                latency[state] += values
                by_worker[state].setdefault(int(worker), []).extend(values)
            after_redis[state] += answer["after_redis"][state]
        for key, (low, high) in answer["spread"].items():
            was = spread.get(key, (low, high))
            spread[key] = (min(was[0], low), max(was[1], high))
        missing.update(answer["missing"])
        other.update(answer["other_frames"])
        samples += answer["missing_samples"]
        closed += answer["closed"]
        lag += answer["lag_ms"]
        for second, values in answer["by_second"].items():
            by_second.setdefault(int(second), []).extend(values)
        duplicates += answer["duplicates"]
        received += answer["received"]
    expected = len(writes.tx_ids) * sum(per_worker.values())
    spreads: dict[str, list[float]] = {s: [] for s in STATES}
    for key, (low, high) in spread.items():
        spreads[key.partition(":")[0]].append(high - low)
    probe_by_state: dict[str, list[float]] = {s: [] for s in STATES}
    for key, value in probe_seen.items():
        state = key.partition(":")[0]
        if state in probe_by_state:
            probe_by_state[state].append(value)
    valid = {who: s for who, s in cpu_s.items() if not math.isnan(s)}
    deliveries = sum(len(latency[s]) for s in STATES)
    return {
        "config": asdict(config),
        "monitors": sum(per_worker.values()),
        "monitors_per_worker": {str(pid): n for pid, n in sorted(per_worker.items())},
        "ws_extensions": dict(extensions),
        "writes": writes.summary(),
        "writes_by_worker_incl_warmup": {str(p): n for p, n in sorted(writes_by_worker.items())},
        "drained_after_s": round(settled_s, 2),
        "dead_letters": dead,
        "deliveries": {
            "expected_per_state": expected,
            "received": {s: len(latency[s]) for s in STATES},
            "missing": {s: missing.get(s, 0) for s in STATES},
            "missing_total": sum(missing.values()),
            "missing_samples": samples[:10],
            "duplicates": duplicates,
            "other_frames": dict(other),
            "monitors_closed": len(closed),
            "closed_samples": closed[:5],
            "frames_received_total": received,
            "per_s_in_window": round(deliveries / elapsed_s, 1) if elapsed_s else math.nan,
        },
        "latency_ms": {s: stats(latency[s]) for s in STATES}
        | {"all": stats([v for s in STATES for v in latency[s]])},
        "latency_ms_by_worker": {
            s: {str(w): stats(v) for w, v in sorted(by_worker[s].items())} for s in STATES
        },
        "redis_to_probe_ms": {s: stats(probe_by_state[s]) for s in STATES},
        "after_redis_ms": {s: stats(after_redis[s]) for s in STATES},
        "fanout_spread_ms": {s: stats(spreads[s]) for s in STATES},
        "client_loop_lag_ms": stats(lag),
        f"{HEADLINE}_by_second_ms": {
            str(second): {"p50": stats(v)["p50"], "p99": stats(v)["p99"]}
            for second, v in sorted(by_second.items())
        },
        "cpu": {
            "window_s": round(elapsed_s, 2),
            "cores_busy": {who: round(s / elapsed_s, 3) for who, s in valid.items()},
            "machine_share": machine_share,
            "untracked_cores": round(untracked_cores(valid, machine_share, elapsed_s), 3),
            "by_second": cpu_by_second,
        },
        "py_spy_files": spy_files,
    }


# --- the report -----------------------------------------------------------------------------


def rows_of(result: dict[str, Any]) -> list[Row]:
    lat = result["latency_ms"]
    head = lat[HEADLINE]
    rate = result["config"]["rate_per_s"]
    rows = [
        Row("p50", f"{HEADLINE} event, monitor latency p50", head["p50"], "ms"),
        Row("p90", f"{HEADLINE} event, monitor latency p90", head["p90"], "ms"),
        Row("p99", f"{HEADLINE} event, monitor latency p99", head["p99"], "ms", GOAL_P99_MS),
        Row("max", f"{HEADLINE} event, monitor latency max", head["max"], "ms"),
        Row("redis_p50", f"{HEADLINE}: at -> Redis delivered (probe) p50",
            result["redis_to_probe_ms"][HEADLINE]["p50"], "ms"),
        Row("redis_p99", f"{HEADLINE}: at -> Redis delivered (probe) p99",
            result["redis_to_probe_ms"][HEADLINE]["p99"], "ms"),
        Row("after_p50", f"{HEADLINE}: Redis delivered -> monitor p50",
            result["after_redis_ms"][HEADLINE]["p50"], "ms"),
        Row("after_p99", f"{HEADLINE}: Redis delivered -> monitor p99",
            result["after_redis_ms"][HEADLINE]["p99"], "ms"),
        Row("spread_p99", f"{HEADLINE}: first to last monitor p99",
            result["fanout_spread_ms"][HEADLINE]["p99"], "ms"),
    ]  # fmt: skip
    for state in STATES[1:]:
        rows += [
            Row(f"{state}_p50", f"{state} event, monitor latency p50", lat[state]["p50"], "ms"),
            Row(f"{state}_p99", f"{state} event, monitor latency p99", lat[state]["p99"], "ms"),
        ]
    rows += [
        Row("all_p50", "every event (all states), monitor latency p50", lat["all"]["p50"], "ms"),
        Row("all_p99", "every event (all states), monitor latency p99", lat["all"]["p99"], "ms",
            GOAL_P99_MS),
        Row("all_max", "every event (all states), monitor latency max", lat["all"]["max"], "ms"),
        Row("post_p99", f"POST {START_PATH} p99 @{rate:g}/s",
            result["writes"]["post_ms"]["p99"], "ms", GOAL_POST_P99_MS),
        Row("deliveries_per_s", "frames delivered to monitors (measured writes)",
            result["deliveries"]["per_s_in_window"], "/s"),
        Row("client_lag_p99", "client loop lag p99 (load generator)",
            result["client_loop_lag_ms"]["p99"], "ms"),
        Row("client_lag_max", "client loop lag max (load generator)",
            result["client_loop_lag_ms"]["max"], "ms"),
    ]  # fmt: skip
    return rows


def render(result: dict[str, Any], environment: dict[str, Any]) -> str:
    cfg = result["config"]
    deliveries = result["deliveries"]
    writes = result["writes"]
    lines: list[str] = []
    info = environment["machine"]
    lines.append(
        f"machine: {info['cores']} cores ({info['usable_cores']} usable), load average"
        f" {info['load_avg_1m']} before, {environment['machine_after']['load_avg_1m']} after;"
        f" Python {info['python']}; {info['platform']}"
    )
    fsync = environment.get("redis_dir_fsync", {})
    lines.append(
        f"fsync where Redis keeps its AOF: p50 {fsync.get('p50_ms')} ms, p99 {fsync.get('p99_ms')}"
        f" ms; WAN {2 * cfg['wan_delay_ms']} ms round trip; processor"
        f" {'running' if cfg['processor'] else 'OFF'}"
    )
    lines.append(
        f"monitors: {result['monitors']} over {cfg['client_processes']} client processes,"
        f" WebSocket extensions {result['ws_extensions']}"
    )
    for pid, count in result["monitors_per_worker"].items():
        head = result["latency_ms_by_worker"][HEADLINE].get(pid, {})
        lines.append(
            f"  worker pid {pid}: {count} monitors, {HEADLINE} p50 {head.get('p50')} ms,"
            f" p99 {head.get('p99')} ms; writes served (incl. warm-up):"
            f" {result['writes_by_worker_incl_warmup'].get(pid, 0)}"
        )
    lines.append(
        f"writes: {writes['ok']} ok of {writes['sent']} at {cfg['rate_per_s']:g}/s over"
        f" {cfg['duration_s']:g}s ({writes['achieved_per_s']}/s; warm-up of {cfg['warmup_s']:g}s"
        f" excluded), {writes['errors']} failed; POST p50 {writes['post_ms']['p50']} ms, p99"
        f" {writes['post_ms']['p99']} ms; "
        + (
            f"all visible {result['drained_after_s']}s after the last write"
            if cfg["processor"] and not math.isnan(result["drained_after_s"])
            else f"NOT all visible within {cfg['settle_timeout_s']:g}s"
            if cfg["processor"]
            else "no processor, so nothing applied"
        )
        + f"; {result['dead_letters']} dead letters"
    )
    received = deliveries["received"]
    lines.append(
        f"deliveries: {deliveries['expected_per_state']:,} expected per state"
        f" ({writes['ok']} writes x {result['monitors']} monitors); received "
        + ", ".join(f"{s} {received[s]:,}" for s in STATES)
        + f"; missing {deliveries['missing_total']:,}; duplicates {deliveries['duplicates']};"
        f" other frames {deliveries['other_frames'] or 'none'};"
        f" monitors closed by the server {deliveries['monitors_closed']}"
    )
    busy = result["cpu"]["cores_busy"]
    clients = sum(v for k, v in busy.items() if k.startswith("client-"))
    workers = ", ".join(f"{k} {v:.2f}" for k, v in busy.items() if k.startswith("worker-"))
    others = ", ".join(
        f"{k} {v:.2f}"
        for k, v in busy.items()
        if k in ("processor", "redis", "main_pg", "replica_pg", "wan", "probe", "bench")
    )
    share = result["cpu"]["machine_share"]
    lines.append(
        f"cores busy in the window: gateway {busy.get('gateway', math.nan):.2f} ({workers});"
        f" monitor clients {clients:.2f}; {others}; machine"
        f" {100 * share.get('idle', 0):.0f}% idle, {100 * share.get('steal', 0):.0f}% steal"
    )
    lines.append(
        f"  untracked (other work on the machine, unattributed kernel time):"
        f" {result['cpu']['untracked_cores']:.2f} cores"
    )
    timeline = result[f"{HEADLINE}_by_second_ms"]
    lines.append(
        f"by second of the window: {HEADLINE} p99 (ms) "
        + " ".join(f"{v['p99']:.0f}" for v in timeline.values())
    )
    for label, key in (
        ("machine busy", "busy"),
        ("gateway", "gateway"),
        ("monitor clients", "clients"),
        ("untracked", "untracked"),
    ):
        lines.append(
            f"  {label} (cores) "
            + " ".join(f"{second[key]:.1f}" for second in result["cpu"]["by_second"])
        )  # fmt: skip
    lines.append("")
    lines.append(
        table(rows_of(result), f"WebSocket fan-out: {result['monitors']} monitors, "
              f"{cfg['workers']} workers, {cfg['rate_per_s']:g} writes/s")
    )  # fmt: skip
    for label, key in ((f"{HEADLINE}-event", HEADLINE), ("every-event", "all")):
        p99 = result["latency_ms"][key]["p99"]
        verdict = "MEETS" if GOAL_P99_MS.met_by(p99) else "MISSES"
        lines.append(
            f"verdict: {label} p99 {p99:.1f} ms against the target {GOAL_P99_MS}: {verdict}"
            f" the target (p99/target = {GOAL_P99_MS.ratio(p99):.2f})"
        )
    post_p99 = result["writes"]["post_ms"]["p99"]
    post_verdict = "MEETS" if GOAL_POST_P99_MS.met_by(post_p99) else "MISSES"
    lines.append(
        f"verdict: write (POST) p99 {post_p99:.1f} ms with {result['monitors']} monitors against"
        f" the target {GOAL_POST_P99_MS}: {post_verdict} the target"
        f" (p99/target = {GOAL_POST_P99_MS.ratio(post_p99):.2f})"
    )
    if deliveries["missing_total"] or deliveries["monitors_closed"] or deliveries["duplicates"]:
        lines += [
            "",
            "!" * 78,
            f"!!! DELIVERIES LOST: {deliveries['missing_total']:,} missing ("
            + ", ".join(f"{s} {n:,}" for s, n in deliveries["missing"].items())
            + f"), {deliveries['duplicates']} duplicates,"
            f" {deliveries['monitors_closed']} monitors closed by the server",
            *(f"!!!   {s}" for s in deliveries["missing_samples"] + deliveries["closed_samples"]),
            "!!! the latency figures above leave the lost deliveries out",
            "!" * 78,
        ]
    else:
        lines.append(
            f"completeness: every one of the {result['monitors']} monitors received every event"
            f" of all {writes['ok']} measured writes ({sum(received.values()):,} deliveries)"
        )
    return "\n".join(lines)


def keep_logs(stack: Stack, directory: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
        for log in stack.base_dir.rglob("*.log"):
            shutil.copy2(log, directory / log.name)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: Iterable[str] | None) -> FanoutConfig:
    defaults = FanoutConfig()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--monitors", type=int, default=defaults.monitors)
    parser.add_argument("--rate", type=float, default=defaults.rate_per_s, help="writes/s")
    parser.add_argument("--duration-s", type=float, default=defaults.duration_s)
    parser.add_argument("--warmup-s", type=float, default=defaults.warmup_s)
    parser.add_argument("--workers", type=int, default=defaults.workers, help="gateway workers")
    parser.add_argument("--client-processes", type=int, default=defaults.client_processes)
    parser.add_argument("--wan-delay-ms", type=int, default=defaults.wan_delay_ms, help="one way")
    parser.add_argument(
        "--no-processor",
        action="store_true",
        help="do not drain the buffer (only buffered events; completeness then checks those)",
    )
    parser.add_argument(
        "--compression",
        choices=("deflate", "none"),
        default="deflate",
        help="what the monitors offer (deflate: what browsers and websockets do by default)",
    )
    parser.add_argument(
        "--py-spy", metavar="BIN", help="a py-spy binary: record each worker in the window"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.monitors < 1 or args.rate <= 0 or args.duration_s <= 0 or args.workers < 1:
        parser.error("--monitors, --rate, --duration-s and --workers must be positive")
    if not 1 <= args.client_processes <= args.monitors:
        parser.error("--client-processes must be between 1 and --monitors")
    return FanoutConfig(
        monitors=args.monitors,
        rate_per_s=args.rate,
        duration_s=args.duration_s,
        warmup_s=args.warmup_s,
        workers=args.workers,
        client_processes=args.client_processes,
        wan_delay_ms=args.wan_delay_ms,
        processor=not args.no_processor,
        compression=None if args.compression == "none" else "deflate",
        py_spy=args.py_spy,
    )


def main(argv: Iterable[str] | None = None) -> int:
    config = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    clock = Clock()
    environment: dict[str, Any] = {"machine": machine()}
    stack = Stack(StackConfig(gateways=False, processor="none", wan_delay_ms=config.wan_delay_ms))
    run = Run()
    result: dict[str, Any] | None = None
    code = EXIT_SETUP
    try:
        stack.up(progress=lambda m: clock.say(f"starting {m}"))
        environment["redis_dir_fsync"] = fsync_probe(stack.redis.data_dir)
        tokens = issue_tokens(stack)
        stack.wait_replica_caught_up()
        url, gateway = start_gateway(stack, config, clock)
        if config.processor:
            # Registered as the stack's processor, so stack.down() stops it too.
            stack.processor = stack.start_processor(SITE)
            clock.say("processor running (ccat-api process)")
        else:
            clock.say("processor NOT running (--no-processor): only buffered events flow")
        result = _run_async(measure(stack, config, url, gateway, tokens, run, clock))
        lost = result["deliveries"]["missing_total"] + result["deliveries"]["duplicates"]
        failed_writes = result["writes"]["errors"]
        code = EXIT_LOST if lost or result["deliveries"]["monitors_closed"] else EXIT_OK
        if failed_writes:
            code = EXIT_SETUP
    except KeyboardInterrupt:
        clock.say("interrupted: stopping everything")
        code = EXIT_INTERRUPTED
    except Exception as exc:
        clock.say(f"SETUP FAILED: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        code = EXIT_SETUP
    finally:
        # Ctrl-C twice must not leave processes behind: ignore it while cleaning up.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for spy in run.spies:
                if spy.poll() is None:
                    spy.terminate()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        spy.wait(10)
            for child in run.children:
                child.stop()
            keep_logs(stack, RESULTS_FILE.parent / "ws_fanout_logs")
            stack.down()
        finally:
            signal.signal(signal.SIGINT, previous)
    environment["machine_after"] = machine()
    if result is None:
        return code
    if not config.processor:
        result["note"] = "processor not running: applied/visible events were not produced"
    report = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "duration_s": round(time.monotonic() - clock.started, 1),
        "environment": environment,
        "figures": {row.key: row.as_dict() for row in rows_of(result)},
        "result": result,
        "exit_code": code,
    }
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(render(result, environment))
    if result["writes"]["errors"]:
        print(
            f"WRITES FAILED: {result['writes']['errors']} of {result['writes']['sent']},"
            f" e.g. {result['writes']['error_samples'][:2]}"
        )
    print(f"figures written to {RESULTS_FILE}")
    return code


if __name__ == "__main__":
    sys.exit(main())
