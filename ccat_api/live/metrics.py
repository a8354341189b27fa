"""The exposition served at ``/metrics``: this process's (or every worker's) own metrics,
then the site-wide figures of a ``SiteStatus`` sample.

Site-wide figures are read at scrape time, so whichever worker answers reports the same
values, and their counters survive restarts: they live in Redis, changed by the same
scripts that change what they count. Rates (accept, drain) are Prometheus's ``rate()``.
While Redis is down the buffer's figures are left out (a stale or zero value would read as
a real one) and ``ccat_redis_up`` says why; this process's own metrics are always there.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from ccat_api.live.models import SiteStatus
from ccat_api.metrics import REPLAY_REGISTRY

# Processors running in this process (a gateway with ``run_processor``): only then does its
# exposition include the processor's own histograms.
_processors_here = 0
_REPLAY_METRICS = frozenset(metric.name for metric in REPLAY_REGISTRY.collect())


# (counter in Redis, metric name, help)
_SITE_COUNTERS = (
    ("accepted", "ccat_transactions_accepted", "Critical writes accepted into the buffer"),
    ("applied", "ccat_transactions_applied", "Buffered transactions applied on main"),
    ("failed", "ccat_transactions_failed", "Transactions moved to the dead-letter list"),
    ("visible", "ccat_transactions_visible", "Applied transactions seen on the local replica"),
    ("retried", "ccat_transactions_retried", "Dead letters re-buffered by an operator"),
    ("discarded", "ccat_transactions_discarded", "Dead letters discarded by an operator"),
    ("batches", "ccat_replay_batches", "Replay batches recorded (all processors of the site)"),
    ("batch_transactions", "ccat_replay_batch_transactions_recorded",
     "Transactions in recorded replay batches (all processors of the site)"),
)  # fmt: skip


class SiteCollector(Collector):
    """The site-wide figures of one status sample, as Prometheus metric families."""

    def __init__(self, status: SiteStatus) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        status = self._status
        site = status.site
        yield _gauge("ccat_main_reachable", "1 when main answered its last probe",
                     site, 1.0 if status.main.get("ok") else 0.0)  # fmt: skip
        if status.redis is not None:
            yield _gauge("ccat_redis_up",
                         "1 when the site's Redis (the write buffer) answered the last sample",
                         site, 1.0 if status.redis.ok else 0.0)  # fmt: skip
        buffer = status.buffer
        if buffer is not None:
            yield _gauge("ccat_buffer_depth", "Transactions buffered, not yet applied on main",
                         site, buffer.depth)  # fmt: skip
            yield _gauge("ccat_buffer_oldest_pending_age_seconds",
                         "Age of the oldest transaction not yet applied on main",
                         site, buffer.oldest_pending_age_s or 0.0)  # fmt: skip
            yield _gauge("ccat_buffer_awaiting_replica",
                         "Applied on main, not yet seen on the local replica",
                         site, buffer.awaiting_replica)  # fmt: skip
            yield _gauge("ccat_dead_letters", "Transactions in the dead-letter list",
                         site, buffer.dead_letters)  # fmt: skip
            for name, help_text, value in (
                ("ccat_buffer_accept_rate", "Transactions accepted per second, last 30 s",
                 buffer.accept_rate_tx_s),
                ("ccat_buffer_drain_rate", "Transactions applied on main per second, last 30 s",
                 buffer.drain_rate_tx_s),
            ):  # fmt: skip
                if value is not None:
                    yield _gauge(name, help_text, site, value)
            if buffer.estimated_drain_s is not None:
                yield _gauge("ccat_buffer_estimated_drain_seconds",
                             "Buffer depth over the measured drain rate",
                             site, buffer.estimated_drain_s)  # fmt: skip
            if buffer.memory_used_bytes is not None:
                yield _gauge("ccat_buffer_memory_used_bytes", "The site's Redis used_memory",
                             site, buffer.memory_used_bytes)  # fmt: skip
            if buffer.memory_used_fraction is not None:
                yield _gauge("ccat_buffer_memory_used_ratio",
                             "The site's Redis used_memory over its maxmemory (absent: no limit)",
                             site, buffer.memory_used_fraction)  # fmt: skip
            yield _gauge("ccat_buffer_near_capacity",
                         "1 while critical writes are refused (503) for the buffer's memory",
                         site, 1.0 if buffer.near_capacity else 0.0)  # fmt: skip
            for field, name, help_text in _SITE_COUNTERS:
                family = CounterMetricFamily(name, help_text, labels=["site"])
                family.add_metric([site], status.counters.get(field, 0))
                yield family
            family = CounterMetricFamily(
                "ccat_replay_batch_main_seconds",
                "Time main spent on recorded replay batches (all processors of the site)",
                labels=["site"],
            )
            family.add_metric([site], status.counters.get("batch_ms", 0) / 1000)
            yield family
        replica = status.replica
        if replica is not None:
            yield _gauge("ccat_replica_up", "1 when the local replica answered",
                         site, 1.0 if replica.ok else 0.0)  # fmt: skip
            for name, help_text, value in (
                ("ccat_replica_receive_lag_bytes",
                 "WAL written on main that has not crossed the WAN to the replica yet",
                 replica.receive_lag_bytes),
                ("ccat_replica_apply_lag_bytes",
                 "WAL received by the replica and not yet replayed", replica.apply_lag_bytes),
                ("ccat_replica_apply_lag_seconds",
                 "While received WAL waits to be replayed: time since the last replayed commit"
                 " was made on main (WAN transit and clock skew included); 0 when none waits",
                 replica.apply_lag_s),
                ("ccat_replica_wan_delay_seconds",
                 "One-way time of the last WAL message across the WAN", replica.wan_delay_s),
            ):  # fmt: skip
                if value is not None:
                    yield _gauge(name, help_text, site, value)
        if status.processor is not None:
            state = GaugeMetricFamily(
                "ccat_processor_state", "The site processor's reported state",
                labels=["site", "state"],
            )  # fmt: skip
            state.add_metric([site, status.processor.get("state", "absent")], 1.0)
            yield state


def _gauge(name: str, help_text: str, site: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=["site"])
    family.add_metric([site], float(value))
    return family


@contextlib.contextmanager
def processor_in_this_process() -> Iterator[None]:
    """While a processor runs in this process, its histograms are part of ``render()``."""
    global _processors_here
    _processors_here += 1
    try:
        yield
    finally:
        _processors_here -= 1


class _Together(Collector):
    def __init__(self, *registries: CollectorRegistry) -> None:
        self._registries = registries

    def collect(self) -> Iterable[Metric]:
        for registry in self._registries:
            yield from registry.collect()


class _Without(Collector):
    def __init__(self, collector: Collector, names: frozenset[str]) -> None:
        self._collector = collector
        self._names = names

    def collect(self) -> Iterable[Metric]:
        return (m for m in self._collector.collect() if m.name not in self._names)


def processor_registry() -> CollectorRegistry:
    """What ``ccat-api process --metrics-port`` serves: the process's default metrics (CPU,
    memory, garbage collector) and the processor's histograms."""
    registry = CollectorRegistry()
    registry.register(_Together(REGISTRY, REPLAY_REGISTRY))
    return registry


# Files of gauges that count only while their process lives (``livesum``), per pid.
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def forget_worker(pid: int) -> None:
    """A worker is stopping: its live gauges (open WebSockets) stop counting. Counters and
    histograms keep its values, as Prometheus expects of a counter."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        mark_process_dead(pid)  # type: ignore[no-untyped-call]


def forget_dead_workers() -> list[int]:
    """Workers that died without stopping (killed, crashed) and were replaced: forget their
    live gauges too. Called as a worker starts; returns the pids forgotten."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return []
    pids = {
        int(found.group(1))
        for path in Path(directory).iterdir()
        if (found := _LIVE_GAUGE_FILE.match(path.name))
    }
    dead = [pid for pid in sorted(pids) if not _alive(pid)]
    for pid in dead:
        mark_process_dead(pid)  # type: ignore[no-untyped-call]
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def render(status: SiteStatus | None) -> tuple[bytes, str]:
    """The exposition text: this process's (or all workers') metrics, then the site's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry()
        collector = MultiProcessCollector(None)  # type: ignore[no-untyped-call]
        # Every worker writes the replay histograms' files, processor or not; all workers
        # share the settings, so this one's answer holds for them all.
        merged.register(collector if _processors_here else _Without(collector, _REPLAY_METRICS))
        body = generate_latest(merged)
    elif _processors_here:
        body = generate_latest(processor_registry())
    else:
        body = generate_latest(REGISTRY)
    if status is not None:
        site_registry = CollectorRegistry(auto_describe=False)
        site_registry.register(SiteCollector(status))
        body += generate_latest(site_registry)
    return body, CONTENT_TYPE_LATEST
