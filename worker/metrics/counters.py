"""Prometheus metrics an operator expects (prometheus-client), counted where things happen.

Names follow Prometheus conventions: base units (`_seconds`), `_total` for counters, and labels of low
cardinality only: `connection` (a configured name), `operation` (a provider operation name such as
`send_job`, see `OPERATIONS`), `code` (the HTTP status, or the transport error's class name), `kind`
(send | poll), `outcome` (the normalised outcome), `result`. Never a number, a text, an id or a secret.

Each process keeps its own; `smsq metrics --port` (or SMSQ_METRICS_PORT in a worker, with
PROMETHEUS_MULTIPROC_DIR for prefork pools) serves them, and the open-work gauges are read from the
database at scrape time by `worker.metrics.server.DatabaseCollector`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram

#: Latency buckets for provider requests (seconds): a loopback sandbox answers in ms, a provider in 100s.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Buckets for a job's life (seconds): from a fraction of a second to a day.
_LIFE_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0)

#: (HTTP method, last path segment) -> the operation label. Ids in the path are folded to `{id}`.
OPERATIONS: dict[tuple[str, str], str] = {
    ("POST", "jobs"): "send_job",  # Retarus REST v1
    ("GET", "jobs"): "list_jobs",
    ("GET", "{id}"): "job_report",
    ("GET", "sms"): "recipient_reports",
    ("GET", "version"): "version",
    ("POST", "sms"): "send_sms",  # Retarus HTTP Simple
    ("GET", "reports"): "report",
    ("POST", "send"): "send_message",  # Sendmode v2
    ("POST", "import"): "import_customer",
    ("GET", "credits"): "credits",
    ("POST", "optout"): "opt_out",
}

PROVIDER_CALLS = Counter(
    "smsq_provider_calls_total",
    "Provider API requests by connection, operation and code (HTTP status or transport error class)",
    ["connection", "operation", "code"],
)
PROVIDER_REQUEST_SECONDS = Histogram(
    "smsq_provider_request_seconds",
    "Seconds from handing a request to the network to its answer (or error), by connection and operation",
    ["connection", "operation"],
    buckets=_REQUEST_BUCKETS,
)
PROVIDER_THROTTLED = Counter(
    "smsq_provider_throttled_total",
    "Provider answers 429 (each pauses the whole connection for its Retry-After)",
    ["connection"],
)
LIMITER_WAITS = Counter(
    "smsq_limiter_waits_total",
    "Times a worker had to wait for the connection's rate limiter",
    ["connection", "kind"],
)
LIMITER_WAIT_SECONDS = Histogram(
    "smsq_limiter_wait_seconds",
    "Seconds a request waited for a limiter slot before it was written (0 when one was free)",
    ["connection", "kind"],
    buckets=(0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0),
)
RECIPIENTS_SUBMITTED = Counter(
    "smsq_recipients_submitted_total",
    "Recipients handed to the provider",
    ["connection"],
)
RECIPIENT_OUTCOMES = Counter(
    "smsq_recipient_outcomes_total",
    "Recipients that reached a final outcome, by connection and normalised outcome",
    ["connection", "outcome"],
)
ENQUEUE_TO_SUBMITTED = Histogram(
    "smsq_enqueue_to_submitted_seconds",
    "Seconds from the moment a job was due (its enqueue, unless held for a jobPeriod) to its acceptance",
    ["connection"],
    buckets=_LIFE_BUCKETS,
)
SUBMITTED_TO_FINAL = Histogram(
    "smsq_submitted_to_final_seconds",
    "Seconds from a job's submission to its last recipient's final outcome",
    ["connection"],
    buckets=_LIFE_BUCKETS,
)
SEND_RETRIES = Counter(
    "smsq_send_retries_total",
    "Jobs queued again after a retryable provider error (5xx, connect failure, auth), by connection",
    ["connection"],
)
LOOKUPS = Counter(
    "smsq_lookups_total",
    "Lookups of provider calls whose fate was unknown, by connection and result (found, absent, pending, ...)",
    ["connection", "result"],
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


def operation_name(method: str, last_segment: str) -> str:
    """The `operation` label of a request: a name from `OPERATIONS`, or `other`."""
    return OPERATIONS.get((method.upper(), last_segment), "other")


def count_outcomes(connection: str, outcomes: Iterable[str]) -> None:
    """Count recipients that just became final (one outcome per recipient)."""
    for outcome in outcomes:
        RECIPIENT_OUTCOMES.labels(connection, str(outcome)).inc()


def observe_since(
    histogram: Histogram, connection: str, start: datetime | None, end: datetime | None
) -> None:
    """Observe `end - start` in seconds on `histogram` (nothing when either is unknown; never negative)."""
    if start is None or end is None:
        return
    start, end = _naive_utc(start), _naive_utc(end)  # SQLite hands back naive UTC times
    histogram.labels(connection).observe(max((end - start).total_seconds(), 0.0))


def observe_all(histogram: Histogram, connection: str, seconds: Iterable[float]) -> None:
    """Observe many durations (a call's thousands of jobs) on one labelled child; negatives count as 0."""
    child = histogram.labels(connection)
    for value in seconds:
        child.observe(value if value > 0.0 else 0.0)


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value
