"""The exposition served at ``/metrics``: this process's (or every worker's) own metrics,
then the site-wide figures of a ``SiteStatus`` sample.

Site-wide figures are read at scrape time, so whichever worker answers reports the same
values, and their counters survive restarts: they live in Redis, changed by the same
scripts that change what they count. Rates (accept, drain) are Prometheus's ``rate()``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ccat_api.live.models import SiteStatus

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
                 "Age of the oldest received commit not yet replayed", replica.apply_lag_s),
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


def render(status: SiteStatus | None) -> tuple[bytes, str]:
    """The exposition text: this process's (or all workers') metrics, then the site's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        process_registry = CollectorRegistry()
        MultiProcessCollector(process_registry)  # type: ignore[no-untyped-call]
        body = generate_latest(process_registry)
    else:
        body = generate_latest(REGISTRY)
    if status is not None:
        site_registry = CollectorRegistry(auto_describe=False)
        site_registry.register(SiteCollector(status))
        body += generate_latest(site_registry)
    return body, CONTENT_TYPE_LATEST
