"""What this process measures itself, as prometheus-client objects: request latency by route,
WebSocket connections and crashes of supervised loops in the default registry; replay batch
size and duration and failed lease renewals in ``REPLAY_REGISTRY``, exposed only by a
process that runs a processor (``ccat-api process --metrics-port``, or a gateway with
``run_processor``), so a gateway without one does not report a processor's histograms stuck
at zero.

Under several uvicorn workers set ``PROMETHEUS_MULTIPROC_DIR`` (``ccat-api serve --workers N``
does) and every worker's values are merged at scrape time. The site-wide figures (buffer,
replica lag, totals kept in Redis) are exposed by ``ccat_api.live.metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

HTTP_REQUEST_DURATION = Histogram(
    "ccat_http_request_duration_seconds",
    "HTTP request latency, by route template, method and status code",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REPLAY_REGISTRY = CollectorRegistry()
REPLAY_BATCH_SIZE = Histogram(
    "ccat_replay_batch_transactions",
    "Transactions sent to main per replay batch (this processor)",
    buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000, 20000),
    registry=REPLAY_REGISTRY,
)
REPLAY_BATCH_DURATION = Histogram(
    "ccat_replay_batch_duration_seconds",
    "Time to apply one replay batch on main, WAN round trips included (this processor)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
    registry=REPLAY_REGISTRY,
)
LEASE_RENEWAL_FAILURES = Counter(
    "ccat_lease_renewal_failures",
    "Processor lease renewals that failed (reason=error: Redis did not answer) or found the"
    " lease taken (reason=lost) (this processor)",
    ["reason"],
    registry=REPLAY_REGISTRY,
)
REPLAYED_AFTER_FAILOVER = Counter(
    "ccat_replayed_after_main_failover",
    "Transactions main had applied, then lost in a failover (asynchronous replication), and"
    " the processor applied again from the envelopes it kept (this processor)",
    registry=REPLAY_REGISTRY,
)
LOOP_CRASHES = Counter(
    "ccat_loop_crashes",
    "Unexpected exceptions that stopped a supervised loop, restarted after a backoff, by loop"
    " (processor, tracker, main_probe, durability)",
    ["loop"],
)
WEBSOCKET_CONNECTIONS = Gauge(
    "ccat_websocket_connections",
    "Open WebSocket monitor connections, by stream",
    ["stream"],
    multiprocess_mode="livesum",
)
WEBSOCKET_DROPPED = Counter(
    "ccat_websocket_slow_consumers_dropped",
    "Monitors disconnected because they fell too far behind, by stream",
    ["stream"],
)
PRUNED_ROWS = Counter(
    "ccat_pruned_rows",
    "Bookkeeping rows retention removed on main (db/pruning.py), by kind: applied_transactions,"
    " idempotency_answers_compacted (to a tombstone), idempotency_tombstones_deleted",
    ["kind"],
)
