"""Prometheus metrics an operator expects (prometheus-client).

Counters live in each process; `smsq metrics --port` (or SMSQ_METRICS_PORT in a worker) serves them,
and the job/recipient gauges are read from the database at scrape time by `DatabaseCollector`.
"""

from __future__ import annotations

from prometheus_client import Counter

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
