"""The Prometheus figures of one deploybot process, served at `/metrics`.

Counters, gauges and histograms of what happens in this process live here, module-level,
on prometheus-client's default registry: the core and the runner observe durations and
log lines where they write them, the transports count operations, sockets and
subscriptions. What the database knows for every process at once (deployments by state,
the queue) is read at scrape time by `web/metrics.py` into the `DEPLOYMENTS`,
`QUEUE_DEPTH` and `RUNNING` gauges.

A runner in its own process (`deploybot runner --metrics-port N`) serves its figures on
a port of its own; with the embedded runner they are part of the server's `/metrics`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

DURATION_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)
"""Seconds: deployments and their steps take from about a second to an hour."""

OPERATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

DEPLOYMENTS = Gauge(
    "deploybot_deployments",
    "Deployments in the database by environment, application, state and trigger",
    ["environment", "application", "state", "trigger"],
)
QUEUE_DEPTH = Gauge("deploybot_queue_depth", "Deployments QUEUED", ["environment"])
RUNNING = Gauge("deploybot_running_deployments", "Deployments IN_PROGRESS", ["environment"])

DEPLOYMENT_DURATION = Histogram(
    "deploybot_deployment_duration_seconds",
    "From start to end of the deployments this process finished",
    ["environment", "application", "state"],
    buckets=DURATION_BUCKETS,
)
STEP_DURATION = Histogram(
    "deploybot_step_duration_seconds",
    "Duration of the deployment steps this process ended",
    ["step", "status"],
    buckets=DURATION_BUCKETS,
)
LOG_LINES = Counter("deploybot_log_lines_written_total", "Deployment log lines stored")

WEBHOOK_DELIVERIES = Counter(
    "deploybot_webhook_deliveries_total",
    "Webhook deliveries received, by provider and outcome (deployed, ignored, duplicate, "
    "rejected, signature_invalid, payload_invalid, webhook_not_found, too_large)",
    ["provider", "outcome"],
)
RATE_LIMITED = Counter(
    "deploybot_rate_limited_requests_total",
    "Requests refused with RATE_LIMITED, by limit (deploy, status, list, websocket_operations)",
    ["limit"],
)

GRAPHQL_OPERATIONS = Counter(
    "deploybot_graphql_operations_total",
    "GraphQL operations by operation name and type (query, mutation, subscription)",
    ["name", "type"],
)
GRAPHQL_DURATION = Histogram(
    "deploybot_graphql_operation_duration_seconds",
    "Time to answer a query or mutation (a subscription's is its set-up)",
    ["name", "type"],
    buckets=OPERATION_BUCKETS,
)
OPEN_WEBSOCKETS = Gauge("deploybot_open_websockets", "GraphQL WebSocket connections open")
ACTIVE_SUBSCRIPTIONS = Gauge(
    "deploybot_active_subscriptions", "GraphQL subscriptions running on WebSockets"
)

_MAX_NAME = 64


def operation_name(name: str | None) -> str:
    """The label of an operation: its name, bounded, or `anonymous`."""
    return (name or "anonymous")[:_MAX_NAME]


@contextmanager
def timed_operation(name: str | None, kind: str) -> Iterator[None]:
    """Count one GraphQL operation and observe how long it took."""
    label = operation_name(name)
    started = time.perf_counter()
    try:
        yield
    finally:
        GRAPHQL_OPERATIONS.labels(label, kind).inc()
        GRAPHQL_DURATION.labels(label, kind).observe(time.perf_counter() - started)
