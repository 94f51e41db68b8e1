"""Serving smsq's metrics to Prometheus: `smsq metrics --port N`, or a worker with SMSQ_METRICS_PORT.

Two sources:

- the counters and histograms of `worker.metrics.counters`, kept in each process that makes calls;
- `DatabaseCollector`, gauges of open work read at scrape time: jobs in an open state (scheduled,
  queued, submitting, submitted) and their recipients not yet final, by connection (on PostgreSQL
  counted on write by triggers, `worker.metrics.open_counts`; on SQLite counted here); the age of each
  connection's oldest due queued job (the backlog age) and oldest `submitting` job; broker queue
  lengths; credit pauses; beat's last publication of each sweep; and each connection's configured limit. The job queries are bounded by an
  partial index holding open rows only (migration 0004: `ix_smsq_job_open`, `ix_smsq_recipient_open`,
  `ix_smsq_job_queued_due`, `ix_smsq_job_submitting_updated`), so history costs them nothing; states are
  SQL literals (`models.db.fixed`) so a prepared statement's generic plan uses those indexes too.

A Celery worker with the prefork pool counts in its child processes, so its parent must collect
them through prometheus-client's multiprocess mode: start the worker with `PROMETHEUS_MULTIPROC_DIR`
set to an empty directory (the variable must be set before the process starts) and
`serve_worker_metrics(settings)` reads every child's counters from there.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIServer

import redis
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, not_
from sqlmodel import Session, col, select

from models.db import fixed, fixed_in, transaction, utc
from models.enums import JobState
from models.tables import Job, Recipient
from worker.metrics.heartbeat import last_sweeps
from worker.metrics.open_counts import JOBS, RECIPIENTS, compact, counted, counted_query
from worker.queues import Queue
from worker.runtime import Runtime
from worker.settings import Settings

log = logging.getLogger("smsq.metrics")

#: The port `smsq metrics` listens on by default (the OpenTelemetry/Prometheus exporter convention).
DEFAULT_METRICS_PORT = 9464

#: The job states that are work still to do; the gauges count these only.
OPEN_STATES: tuple[JobState, ...] = (
    JobState.SCHEDULED,
    JobState.QUEUED,
    JobState.SUBMITTING,
    JobState.SUBMITTED,
)


def open_jobs_query(session: Session | None = None) -> Any:
    """Jobs by open state and connection: on PostgreSQL the counts kept on write (`open_counts`, compacted
    first when a session is given), else counted (index-only on `ix_smsq_job_open`)."""
    if session is not None and counted(session):
        compact(session)
        return counted_query(JOBS)
    return (
        select(Job.state, Job.connection, func.count())
        .where(fixed_in(col(Job.state), OPEN_STATES))
        .group_by(col(Job.state), col(Job.connection))
    )


def open_recipients_query(session: Session | None = None) -> Any:
    """Recipients not yet final of open jobs, by current outcome and connection: on PostgreSQL the counts
    kept on write, else counted (`ix_smsq_recipient_open` joined to `ix_smsq_job_open`, index-only)."""
    if session is not None and counted(session):
        return counted_query(RECIPIENTS)
    return (
        select(Recipient.outcome, Job.connection, func.count())
        .join(Job, col(Job.id) == col(Recipient.job_id))
        .where(fixed_in(col(Job.state), OPEN_STATES))
        .where(not_(col(Recipient.final)))
        .group_by(col(Recipient.outcome), col(Job.connection))
    )


def oldest_due_query(connection: str, now: datetime) -> Any:
    """The due time of the connection's oldest due queued job (`ix_smsq_job_queued_due`)."""
    return select(func.min(Job.due_at)).where(
        Job.connection == connection, Job.state == fixed(JobState.QUEUED), col(Job.due_at) <= now
    )


def oldest_submitting_query(connection: str) -> Any:
    """When the connection's longest-`submitting` job last moved (`ix_smsq_job_submitting_updated`)."""
    return select(func.min(Job.updated_at)).where(
        Job.state == fixed(JobState.SUBMITTING), Job.connection == connection
    )


def gauge_queries(connections: list[str], now: datetime) -> list[Any]:
    """Every query one scrape runs (EXPLAINed by the tests to prove each uses an index)."""
    queries = [open_jobs_query(), open_recipients_query(), counted_query(JOBS), counted_query(RECIPIENTS)]
    for name in connections:
        queries += [oldest_due_query(name, now), oldest_submitting_query(name)]
    return queries


def _age_s(session: Session, query: Any, now: datetime) -> float:
    oldest = utc(session.exec(query).one())
    return max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0


class DatabaseCollector(Collector):
    """Gauges read at scrape time: open work, backlog age, queue lengths, credit pauses, beat."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._broker: redis.Redis[bytes] | None = None

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("smsq_database_up", "1 when the last scrape could read the database")
        try:
            families = self._read_database()
        except Exception as exc:  # a scrape must answer even when the database is down
            log.warning("metrics: cannot read the database: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
        else:
            up.add_metric([], 1)
            yield up
            yield from families
        yield from self._read_redis()
        yield from self._read_limits()

    def _read_limits(self) -> Iterator[Metric]:
        calls = GaugeMetricFamily(
            "smsq_connection_limit_calls",
            "The connection's budget of API calls per period",
            labels=["connection"],
        )
        period = GaugeMetricFamily(
            "smsq_connection_limit_period_seconds",
            "The connection's rate-limit period",
            labels=["connection"],
        )
        try:
            connections = self._rt.connections
        except Exception:
            return
        for name, conn in sorted(connections.items()):
            calls.add_metric([name], conn.rate_limit_calls)
            period.add_metric([name], conn.rate_limit_period_s)
        yield calls
        yield period

    def _connections(self) -> list[str]:
        try:
            return sorted(self._rt.connections)
        except Exception:
            return ["default"]

    def _read_database(self) -> list[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "smsq_jobs",
            "Jobs in an open state (scheduled, queued, submitting, submitted), by state and connection",
            labels=["state", "connection"],
        )
        recipients = GaugeMetricFamily(
            "smsq_open_recipients",
            "Recipients of open jobs not yet final, by current outcome and connection",
            labels=["outcome", "connection"],
        )
        backlog = GaugeMetricFamily(
            "smsq_backlog_age_seconds",
            "Age of the connection's oldest due queued job (0: no backlog)",
            labels=["connection"],
        )
        submitting = GaugeMetricFamily(
            "smsq_submitting_age_seconds",
            "Seconds since the connection's longest-submitting job moved (0: none submitting)",
            labels=["connection"],
        )
        now = self._rt.clock.now()
        with transaction(self._rt.sessions) as session:
            counts = {(state, conn): 0 for state in OPEN_STATES for conn in self._connections()}
            for state, connection, count in session.exec(open_jobs_query(session)):
                counts[(state, connection)] = count
            for (state, connection), count in sorted(counts.items()):
                jobs.add_metric([str(state), connection], count)
            for outcome, connection, count in session.exec(open_recipients_query(session)):
                recipients.add_metric([outcome, connection], count)
            for name in self._connections():
                backlog.add_metric([name], _age_s(session, oldest_due_query(name, now), now))
                submitting.add_metric([name], _age_s(session, oldest_submitting_query(name), now))
        return [jobs, recipients, backlog, submitting]

    def _read_redis(self) -> Iterator[Metric]:
        from worker.policy.credits import pause_reason

        queued = GaugeMetricFamily(
            "smsq_broker_queue_length", "Messages waiting in each broker queue", labels=["queue"]
        )
        paused = GaugeMetricFamily(
            "smsq_connection_paused",
            "1 when the connection is paused for lack of credits",
            labels=["connection"],
        )
        beat = GaugeMetricFamily(
            "smsq_beat_last_sweep_timestamp_seconds",
            "UNIX time (Redis clock) at which beat last published each sweep",
            labels=["sweep"],
        )
        try:
            if self._rt.settings.broker_url.startswith(("redis://", "rediss://")):
                if self._broker is None:
                    self._broker = redis.Redis.from_url(self._rt.settings.broker_url, socket_timeout=5)
                for queue in Queue:
                    queued.add_metric([queue.value], int(self._broker.llen(queue.value)))
            for name in self._connections():
                paused.add_metric([name], 1 if pause_reason(self._rt, name) else 0)
            for sweep, at_s in sorted(last_sweeps(self._rt.redis).items()):
                beat.add_metric([sweep], at_s)
        except Exception as exc:
            log.warning("metrics: cannot read Redis: %s", type(exc).__name__)
            return
        yield queued
        yield paused
        yield beat


class _Forward(Collector):
    """Everything another registry holds (the process's counters), inside a registry of its own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


def metrics_registry(runtime: Runtime, *, include_database: bool = True) -> CollectorRegistry:
    """The process's counters plus, when asked, the database gauges (never added to the default registry)."""
    base = _process_registry()
    if not include_database:
        return base
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Forward(base))
    registry.register(DatabaseCollector(runtime))
    return registry


def serve_metrics(
    runtime: Runtime,
    *,
    port: int = DEFAULT_METRICS_PORT,
    addr: str = "0.0.0.0",
    include_database: bool = True,
) -> tuple[WSGIServer, threading.Thread]:
    """Serve /metrics on `addr:port` from a daemon thread; returns the server (`shutdown()` it) and thread."""
    registry = metrics_registry(runtime, include_database=include_database)
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return server, thread


def _process_registry() -> CollectorRegistry:
    """The default registry, or a multiprocess one when PROMETHEUS_MULTIPROC_DIR is set (prefork pools)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


_worker_server: Any = None


def serve_worker_metrics(settings: Settings, runtime: Runtime | None = None) -> bool:
    """Serve a worker's metrics when SMSQ_METRICS_PORT is set; True if a server was started.

    Call it once in the worker's main process (for example from Celery's `worker_init` signal).
    Without PROMETHEUS_MULTIPROC_DIR a prefork worker only shows its parent's counters, so set it.
    Database gauges are left to `smsq metrics`, so a fleet of workers does not multiply those queries.
    """
    global _worker_server
    if settings.metrics_port is None or _worker_server is not None:
        return False
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        log.warning("SMSQ_METRICS_PORT without PROMETHEUS_MULTIPROC_DIR: pool processes' counters are lost")
    rt = runtime or Runtime(settings)
    _worker_server, _ = serve_metrics(rt, port=settings.metrics_port, include_database=False)
    return True
