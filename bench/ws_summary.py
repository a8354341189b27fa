"""What ``bench.ws_fanout`` makes of the client processes' answers: latency by state and
by worker, the part before and after Redis, the fan-out spread, completeness and CPU."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict
from typing import Any

from bench.ws_config import HEADLINE, STATES, FanoutConfig, stats
from bench.ws_cpu import untracked_cores
from bench.ws_writes import WriteLog


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
