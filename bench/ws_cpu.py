"""CPU accounting of ``bench.ws_fanout``: the cores the machine kept busy beyond the
processes we know of, overall and second by second through the measured window."""

from __future__ import annotations

import math
import os
import threading
import time

from bench.sysinfo import machine_cpu_s, process_cpu_s

BUSY_KINDS = ("user", "nice", "system", "irq", "softirq")


def top_level(name: str) -> bool:
    """Processes whose CPU is not already counted in another one's (workers are in the
    gateway's, as its children)."""
    return not name.startswith("worker-")


def untracked_cores(cpu_s: dict[str, float], share: dict[str, float], elapsed_s: float) -> float:
    """Cores the machine kept busy beyond the processes we know (other work on the box, and
    kernel time not charged to a process, such as part of loopback softirq)."""
    cores = os.cpu_count() or 1
    busy = sum(share.get(kind, 0.0) for kind in BUSY_KINDS) * cores
    tracked = sum(s for who, s in cpu_s.items() if top_level(who)) / elapsed_s
    return busy - tracked


class CpuTimeline:
    """Once a second, from a thread (so a busy event loop does not delay it): how many cores
    the machine, the gateway, the monitor clients and everything untracked kept busy."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = {who: pid for who, pid in pids.items() if top_level(who)}
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
