"""What the phases of ``bench.run`` share: the request they send, the site name of each
phase (its own, so their buffers never mix) and the run's configuration."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from bench.runner import REPO_ROOT

RESULTS_FILE = REPO_ROOT / "bench" / "results" / "latest.json"
START_PATH = "/executed_obs_units/start"
START_BODY = orjson.dumps({"obs_unit_id": 1})
FILES_PATH = "/raw_data_files"
BARE_STREAM = "bench:bare:stream"

SITE_BUFFERED = "bench-buffered"
SITE_VISIBLE = "bench-visible"
SITE_DRAIN = "bench-drain"
SITE_DRAIN_100K = "bench-drain-100k"
SITE_DRAIN_BANDWIDTH = "bench-drain-bandwidth"
SITE_DRAIN_WRITES = "bench-drain-writes"
SITE_DIRECT = "main"  # a MAIN-type gateway: the name is recorded with its writes on main
BARE = "bench-bare"
DIRECT = "bench-direct"


@dataclass(frozen=True)
class BenchConfig:
    one_way_delay_ms: int = 100
    rate_per_s: float = 200.0
    open_duration_s: float = 15.0
    concurrency: int = 32
    closed_duration_s: float = 10.0
    warmup_s: float = 2.0
    # A direct write holds one of the gateway's db_pool_size (10) connections for about three
    # round trips (BEGIN, the apply call, COMMIT), so the pool serves about 16 writes/s. At
    # 20 req/s it is saturated and overflow connections (opened and closed over the WAN per
    # request) take over; 10 req/s measures a write's own latency, not that queue.
    direct_rate_per_s: float = 10.0
    direct_open_duration_s: float = 15.0
    direct_concurrency: int = 10
    direct_closed_duration_s: float = 10.0
    visible_transactions: int = 300
    visible_rate_per_s: float = 30.0
    drain_transactions: int = 20_000
    drain_large_transactions: int = 100_000
    drain_bandwidth_mbit: float = 20.0
    # Per site, in the two-site drain (BENCH_SITES_BACKLOG overrides it).
    sites_transactions: int = 10_000
    fill_concurrency: int = 32
    settle_timeout_s: float = 120.0
    client: str = "raw"
    profile_drain: Path | None = None  # cProfile stats of the in-process drain worker
    drain_batch_size: int | None = None  # the drain worker's processor_batch_size (stack's)

    def quick(self) -> BenchConfig:
        return replace(
            self,
            open_duration_s=3.0,
            closed_duration_s=3.0,
            warmup_s=1.0,
            direct_open_duration_s=3.0,
            direct_closed_duration_s=3.0,
            visible_transactions=60,
            drain_transactions=2_000,
            drain_large_transactions=4_000,
            sites_transactions=1_000,
        )
