"""What every part of ``bench.ws_fanout`` shares: the site, paths and event states, the
targets, the exit statuses, the run's configuration, and the percentile summary its
figures are given in."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.load import percentile
from bench.report import Goal
from bench.runner import REPO_ROOT

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
