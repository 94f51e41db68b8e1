"""Prometheus metrics an operator expects (prometheus-client).

Counters live in each process; `smsq metrics --port` (or SMSQ_METRICS_PORT in a worker) serves them,
and the job/recipient gauges are read from the database at scrape time by `DatabaseCollector`.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PROVIDER_CALLS = Counter(
    "smsq_provider_calls_total",
    "Provider API calls by connection, operation and result",
    ["connection", "operation", "result"],
)
LIMITER_WAITS = Counter(
    "smsq_limiter_waits_total",
    "Times a worker had to wait for the connection's rate limiter",
    ["connection", "kind"],
)
RECIPIENTS_SUBMITTED = Counter(
    "smsq_recipients_submitted_total",
    "Recipients handed to the provider",
    ["connection"],
)
GRANT_TO_WIRE = Histogram(
    "smsq_limiter_grant_to_wire_seconds",
    "Seconds from a limiter grant to the request being handed to the network (bounds the limiter margin)",
    ["connection"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
STALE_GRANTS = Counter(
    "smsq_limiter_stale_grants_total",
    "Grants not used because more than the margin passed before the request could be written",
    ["connection"],
)
SUBMISSION_CONFLICTS = Counter(
    "smsq_submission_conflicts_total",
    "Provider acceptances that arrived for a call already resolved otherwise (recorded, never overwritten)",
    ["connection"],
)
DRAIN_RUNS = Counter(
    "smsq_drain_runs_total",
    "Drain task runs by connection and how they ended",
    ["connection", "result"],
)
