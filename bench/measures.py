"""What the phases of ``bench.run`` make of what they observe: CPU per request and cores kept
busy, the lags of each transaction, the WAN's byte counters, the processor's replay batches,
and the one-line summaries printed as each load finishes."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any

from bench.load import LoadResult, percentile

PROCESSOR_LOGGER = "ccat_api.buffering.processor"


def cpu_report(spent: dict[str, float], count: int, elapsed_s: float) -> dict[str, Any]:
    """CPU per request (or transaction) for each process, and how many cores each kept busy."""
    valid = {who: cpu_s for who, cpu_s in spent.items() if not math.isnan(cpu_s)}
    busy = {who: round(cpu_s / elapsed_s, 2) for who, cpu_s in valid.items()} if elapsed_s else {}
    busy["total"] = round(sum(valid.values()) / elapsed_s, 2) if elapsed_s else math.nan
    return {
        "ms_per_request": {who: round(1000 * s / max(1, count), 3) for who, s in valid.items()},
        "cores_busy": busy,
    }


def cpu_line(cpu: dict[str, Any], unit: str = "request") -> str:
    per = ", ".join(f"{who} {ms:.2f}" for who, ms in cpu["ms_per_request"].items())
    line = f"CPU ms per {unit}: {per}; these kept {cpu['cores_busy']['total']} cores busy"
    share = cpu.get("machine_share") or {}
    if share:
        line += (
            f"; machine: {100 * share.get('idle', 0):.0f}% idle,"
            f" {100 * share.get('iowait', 0):.0f}% iowait, {100 * share.get('steal', 0):.0f}% steal"
        )
    return line


class BatchLog(logging.Handler):
    """Collects the processor's per-batch log lines ("replayed N transactions ... in M ms")."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.sizes: list[int] = []
        self.apply_ms: list[float] = []
        self.messages: list[str] = []
        # perf_counter() when the worker started; the first batch's send time is taken from it.
        self.started: float | None = None
        self.first_sent_s = math.nan
        self._logger = logging.getLogger(PROCESSOR_LOGGER)
        self._level = self._logger.level
        self._logger.addHandler(self)
        self._logger.setLevel(logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.messages.append(message)
        args = record.args if isinstance(record.args, tuple) else ()
        if message.startswith("replayed") and len(args) >= 2:
            with contextlib.suppress(TypeError, ValueError):
                self.sizes.append(int(args[0]))  # type: ignore[call-overload]
                self.apply_ms.append(float(args[-1]))  # type: ignore[arg-type]
                if len(self.apply_ms) == 1 and self.started is not None:
                    done_s = time.perf_counter() - self.started
                    self.first_sent_s = round(done_s - self.apply_ms[0] / 1000, 2)

    def detach(self) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)

    def summary(self) -> dict[str, Any]:
        return {
            "count": len(self.sizes),
            "mean_size": round(sum(self.sizes) / len(self.sizes)) if self.sizes else 0,
            "apply_ms_total": round(sum(self.apply_ms)),
            "first_sent_s": self.first_sent_s,
            "apply_ms": [round(ms) for ms in self.apply_ms],
            "sizes": self.sizes,
            "log": self.messages[:50],
        }


def brief(result: LoadResult) -> str:
    text = (
        f"{result.achieved_per_s:.0f} req/s, p50 {result.percentile_ms(50):.1f} ms,"
        f" p99 {result.percentile_ms(99):.1f} ms ({result.ok} ok"
    )
    if result.errors:
        text += f", {result.errors} errors, e.g. {result.error_samples[0]}"
    return text + ")"


def visibility(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    """Percentiles of the lags between a transaction's created, applied and visible times."""

    def lags(start: str, end: str) -> list[float]:
        return [
            (s[end] - s[start]) * 1000
            for s in statuses
            if s.get(start) is not None and s.get(end) is not None
        ]

    def spread(values: list[float]) -> dict[str, float]:
        return {
            "count": len(values),
            "p50": round(percentile(values, 50), 1),
            "p99": round(percentile(values, 99), 1),
            "max": round(max(values, default=math.nan), 1),
        }

    return {
        "transactions": len(statuses),
        "visible": sum(1 for s in statuses if s.get("state") == "visible"),
        "states": sorted({str(s.get("state")) for s in statuses}),
        "applied_to_visible_ms": spread(lags("applied_at", "visible_at")),
        "created_to_applied_ms": spread(lags("created_at", "applied_at")),
        "created_to_visible_ms": spread(lags("created_at", "visible_at")),
    }


def wan_bytes(state: dict[str, Any]) -> tuple[int, int]:
    """Bytes the WAN carried so far, towards main and back, over all its links."""
    links = state.get("links", [])
    return (
        sum(int(link["bytes_up"]) for link in links),
        sum(int(link["bytes_down"]) for link in links),
    )
