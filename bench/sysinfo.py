"""What the machine is doing around the measurements: per-process CPU time (from /proc, so
a figure can say how much CPU the gateway, Redis, PostgreSQL, the WAN simulator or the load
generator spent per request) and
the fsync latency of the disk under Redis's append-only file, which bounds what
``appendfsync always`` can do for the tail of the buffered write latency."""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path
from typing import Any

from bench.load import percentile

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process and all its descendants so far (living ones,
    and those that exited and were reaped, such as finished PostgreSQL backends); NaN where
    /proc is unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    # Fields after the command name (which may hold spaces) start at field 3 (state):
    # utime, stime, cutime, cstime are fields 14-17.
    fields = stat[stat.rindex(")") + 2 :].split()
    total = sum(int(f) for f in fields[11:15]) / _CLOCK_TICKS
    for child in _children(pid):
        child_s = process_cpu_s(child)
        if not math.isnan(child_s):
            total += child_s
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def machine_cpu_s() -> dict[str, float]:
    """Machine-wide CPU seconds by kind (all cores), from the first line of /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return {}
    return {
        kind: int(value) / _CLOCK_TICKS
        for kind, value in zip(_STAT_FIELDS, first[1:], strict=False)
    }


class CpuMeter:
    """CPU time each named process spends between ``start()`` and ``stop()``, and how the
    whole machine's cores were used meanwhile (``machine_share``: user, system, idle, iowait,
    steal... as fractions of all cores' time; steal is time the hypervisor gave elsewhere)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._before: dict[str, float] = {}
        self._machine_before: dict[str, float] = {}
        self.machine_share: dict[str, float] = {}

    def start(self) -> None:
        self._before = {name: process_cpu_s(pid) for name, pid in self._pids.items()}
        self._before["bench"] = time.process_time()
        self._machine_before = machine_cpu_s()

    def stop(self) -> dict[str, float]:
        spent = {name: process_cpu_s(pid) - self._before[name] for name, pid in self._pids.items()}
        spent["bench"] = time.process_time() - self._before["bench"]
        after = machine_cpu_s()
        deltas = {k: after[k] - self._machine_before.get(k, 0.0) for k in after}
        total = sum(deltas.values())
        self.machine_share = {k: round(v / total, 3) for k, v in deltas.items()} if total else {}
        return spent


def fsync_probe(directory: Path, writes: int = 200) -> dict[str, float]:
    """Latency of append + fsync of 200-byte records in ``directory`` (ms percentiles)."""
    path = directory / "fsync-probe.bin"
    latencies_ms = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(writes):
            started = time.perf_counter()
            os.write(fd, b"x" * 200)
            os.fsync(fd)
            latencies_ms.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return {
        "writes": writes,
        "p50_ms": round(percentile(latencies_ms, 50), 3),
        "p99_ms": round(percentile(latencies_ms, 99), 3),
        "max_ms": round(max(latencies_ms), 3),
    }


def machine() -> dict[str, Any]:
    load_1m, load_5m, _ = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_avg_1m": round(load_1m, 2),
        "load_avg_5m": round(load_5m, 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
