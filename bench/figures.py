"""The figures table of ``bench.run``: one row per figure of the phases that ran, each with
its target where it has one (``bench/report.py`` says whether it meets it)."""

from __future__ import annotations

import math
from typing import Any

from bench.report import Goal, Row
from bench.run_config import BenchConfig
from bench.sites import sites_rows

GOAL_BUFFERED_P99_MS = Goal("<=", 10.0)
GOAL_THROUGHPUT_RATIO_PCT = Goal(">=", 60.0)
GOAL_DRAIN_PER_S = Goal(">=", 10_000.0)
GOAL_VISIBLE_P99_MS = Goal("<=", 100.0)
GOAL_ACCEPTED_TO_VISIBLE_P99_MS = Goal("<=", 450.0)
# Through a capped link the drain should fill it: bytes sent over (capacity x time).
GOAL_WAN_UTILISATION = Goal(">=", 0.7)


def figures(phases: dict[str, Any], config: BenchConfig) -> list[Row]:
    """The table's rows, for the phases that ran (a failed phase shows n/a)."""
    rate = f"@{config.rate_per_s:.0f} req/s"
    direct_rate = f"@{config.direct_rate_per_s:.0f} req/s"
    closed = f"(closed x{config.concurrency})"

    def get(*path: str) -> float:
        node: Any = phases
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return math.nan
            node = node[part]
        return float(node) if isinstance(node, int | float) else math.nan

    def ratio(numerator: float, denominator: float, scale: float = 1.0) -> float:
        return scale * numerator / denominator if denominator else math.nan

    # (phases the row needs, the row)
    candidates: list[tuple[tuple[str, ...], Row]] = [
        (("buffered",), Row("buffered_p50_ms", f"buffered write p50 {rate}",
            get("buffered", "open", "p50_ms"), "ms")),
        (("buffered",), Row("buffered_p99_ms", f"buffered write p99 {rate}",
            get("buffered", "open", "p99_ms"), "ms", GOAL_BUFFERED_P99_MS)),
        (("buffered",), Row("buffered_rate", f"buffered write achieved {rate}",
            get("buffered", "open", "achieved_per_s"), "req/s")),
        (("buffered",), Row("buffered_max", f"buffered write max {closed}",
            get("buffered", "closed", "achieved_per_s"), "req/s")),
        (("bare",), Row("bare_p50_ms", f"floor (bare XADD) p50 {rate}",
            get("bare", "open", "p50_ms"), "ms")),
        (("bare",), Row("bare_p99_ms", f"floor (bare XADD) p99 {rate}",
            get("bare", "open", "p99_ms"), "ms")),
        (("bare",), Row("bare_max", f"floor (bare XADD) max {closed}",
            get("bare", "closed", "achieved_per_s"), "req/s")),
        (("buffered", "bare"), Row("buffered_vs_bare_pct", "buffered / bare max throughput",
            ratio(get("buffered", "closed", "achieved_per_s"),
                  get("bare", "closed", "achieved_per_s"), 100),
            "%", GOAL_THROUGHPUT_RATIO_PCT)),
        (("direct",), Row("direct_p50_ms", f"direct-to-main write p50 {direct_rate}",
            get("direct", "open", "p50_ms"), "ms")),
        (("direct",), Row("direct_p99_ms", f"direct-to-main write p99 {direct_rate}",
            get("direct", "open", "p99_ms"), "ms")),
        (("direct",), Row("direct_rate", f"direct-to-main write achieved {direct_rate}",
            get("direct", "open", "achieved_per_s"), "req/s")),
        (("direct",), Row("direct_max",
            f"direct-to-main write max (closed x{config.direct_concurrency})",
            get("direct", "closed", "achieved_per_s"), "req/s")),
        (("direct", "buffered"), Row("direct_vs_buffered_p50", "direct / buffered p50 latency",
            ratio(get("direct", "open", "p50_ms"), get("buffered", "open", "p50_ms")), "x")),
        (("visible",), Row("visible_p50_ms", "commit-to-visible p50 (visible_at - applied_at)",
            get("visible", "applied_to_visible_ms", "p50"), "ms")),
        (("visible",), Row("visible_p99_ms", "commit-to-visible p99 (visible_at - applied_at)",
            get("visible", "applied_to_visible_ms", "p99"), "ms", GOAL_VISIBLE_P99_MS)),
        (("visible",), Row("accepted_to_visible_p99_ms",
            "accepted-to-visible p99 (visible_at - created_at)",
            get("visible", "created_to_visible_ms", "p99"), "ms",
            GOAL_ACCEPTED_TO_VISIBLE_P99_MS)),
        (("visible",), Row("accepted_to_applied_p99_ms",
            "  of which accepted-to-applied p99 (applied_at - created_at)",
            get("visible", "created_to_applied_ms", "p99"), "ms")),
        (("drain",), Row("drain_fill_rate",
            f"backlog fill through the API (closed x{config.fill_concurrency})",
            get("drain", "fill", "achieved_per_s"), "req/s")),
        (("drain",), Row("drain_applied_per_s",
            f"backlog drain, {get('drain', 'backlog'):,.0f} tx applied on main",
            get("drain", "applied_per_s"), "tx/s", GOAL_DRAIN_PER_S)),
        (("drain",), Row("drain_applied_s", "backlog drain: time until all applied",
            get("drain", "applied_s"), "s")),
        (("drain",), Row("drain_visible_s", "backlog drain: time until all visible",
            get("drain", "visible_s"), "s")),
        (("drain",), Row("drain_first_batch_s",
            "backlog drain: first batch sent after (connect, fence, reports)",
            get("drain", "batches", "first_sent_s"), "s")),
        (("drain_100k",), Row("drain_100k_applied_per_s",
            f"backlog drain, {get('drain_100k', 'backlog'):,.0f} tx applied on main",
            get("drain_100k", "applied_per_s"), "tx/s", GOAL_DRAIN_PER_S)),
        (("drain_100k",), Row("drain_100k_visible_s",
            "backlog drain 100k: time until all visible",
            get("drain_100k", "visible_s"), "s")),
        (("drain_bandwidth",), Row("drain_bandwidth_applied_per_s",
            f"backlog drain, {get('drain_bandwidth', 'backlog'):,.0f} tx, WAN capped at"
            f" {config.drain_bandwidth_mbit:g} Mbit/s",
            get("drain_bandwidth", "applied_per_s"), "tx/s")),
        (("drain_bandwidth",), Row("drain_bandwidth_bytes_per_tx",
            "  WAN bytes per transaction towards main",
            get("drain_bandwidth", "wan_bytes_up_per_tx"), "B")),
        (("drain_bandwidth",), Row("drain_bandwidth_down_bytes_per_tx",
            "  WAN bytes per transaction back from main",
            get("drain_bandwidth", "wan_bytes_down_per_tx"), "B")),
        (("drain_bandwidth",), Row("drain_bandwidth_utilisation",
            "  capped link used (bytes up / capacity x drain time)",
            get("drain_bandwidth", "wan_utilisation"), "", GOAL_WAN_UTILISATION)),
        (("drain_writes",), Row("drain_writes_p99_ms",
            f"buffered write p99 {rate} while a 100k backlog drains",
            get("drain_writes", "load", "p99_ms"), "ms", GOAL_BUFFERED_P99_MS)),
        (("drain_writes",), Row("drain_writes_drained_per_s",
            "  that backlog's drain alongside the writes",
            get("drain_writes", "drained_per_s"), "tx/s")),
    ]  # fmt: skip
    rows = [row for needs, row in candidates if all(n in phases for n in needs)]
    single_per_s = get("drain", "applied_per_s")
    return rows + sites_rows(phases, single_per_s, GOAL_DRAIN_PER_S, GOAL_VISIBLE_P99_MS)
