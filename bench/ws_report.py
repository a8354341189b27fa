"""The report ``bench.ws_fanout`` prints: the machine and the run, the figures table, the
verdicts against the targets and whether every delivery was made."""

from __future__ import annotations

import math
from typing import Any

from bench.report import Row, table
from bench.ws_config import GOAL_P99_MS, GOAL_POST_P99_MS, HEADLINE, START_PATH, STATES


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
