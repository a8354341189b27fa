"""What this process measures itself, as prometheus-client objects in its default registry:
request latency by route, replay batch size and duration, WebSocket connections.

Under several uvicorn workers set ``PROMETHEUS_MULTIPROC_DIR`` (``ccat-api serve --workers N``
does) and every worker's values are merged at scrape time. The site-wide figures (buffer,
replica lag, totals kept in Redis) are exposed by ``ccat_api.live.metrics``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUEST_DURATION = Histogram(
    "ccat_http_request_duration_seconds",
    "HTTP request latency, by route template, method and status code",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REPLAY_BATCH_SIZE = Histogram(
    "ccat_replay_batch_transactions",
    "Transactions sent to main per replay batch (this processor)",
    buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000, 20000),
)
REPLAY_BATCH_DURATION = Histogram(
    "ccat_replay_batch_duration_seconds",
    "Time to apply one replay batch on main, WAN round trips included (this processor)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
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
