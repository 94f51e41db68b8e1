"""Serving smsq's metrics to Prometheus: `smsq metrics --port N`, or a worker with SMSQ_METRICS_PORT.

Two sources:

- the counters of `worker.metrics.counters` (provider calls by connection/operation/result, limiter waits,
  recipients submitted), kept in each process that makes calls;
- `DatabaseCollector`, gauges computed from the database (and Redis) at scrape time: jobs by state
  and connection, recipients by outcome and connection, broker queue lengths, and whether a
  connection is paused for lack of credits. One scrape = a few GROUP BY queries.

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
from typing import Any
from wsgiref.simple_server import WSGIServer

import redis
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import col, select

from models.db import transaction
from models.tables import Job, Recipient
from worker.queues import Queue
from worker.runtime import Runtime
from worker.settings import Settings

log = logging.getLogger("smsq.metrics")

#: The port `smsq metrics` listens on by default (the OpenTelemetry/Prometheus exporter convention).
DEFAULT_METRICS_PORT = 9464


class DatabaseCollector(Collector):
    """Gauges read at scrape time: jobs by state, recipients by outcome, queue lengths, credit pauses."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._broker: redis.Redis[bytes] | None = None

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("smsq_database_up", "1 when the last scrape could read the database")
        try:
            jobs, recipients = self._read_database()
        except Exception as exc:  # a scrape must answer even when the database is down
            log.warning("metrics: cannot read the database: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
        else:
            up.add_metric([], 1)
            yield up
            yield jobs
            yield recipients
        yield from self._read_redis()

    def _read_database(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "smsq_jobs", "Jobs by local state and connection", labels=["state", "connection"]
        )
        recipients = GaugeMetricFamily(
            "smsq_recipients",
            "Recipients by normalised outcome and connection",
            labels=["outcome", "connection"],
        )
        with transaction(self._rt.sessions) as session:
            for state, connection, count in session.exec(
                select(Job.state, Job.connection, func.count()).group_by(col(Job.state), col(Job.connection))
            ):
                jobs.add_metric([state, connection], count)
            for outcome, connection, count in session.exec(
                select(Recipient.outcome, Job.connection, func.count())
                .join(Job, col(Job.id) == col(Recipient.job_id))
                .group_by(col(Recipient.outcome), col(Job.connection))
            ):
                recipients.add_metric([outcome, connection], count)
        return jobs, recipients

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
        try:
            if self._rt.settings.broker_url.startswith(("redis://", "rediss://")):
                if self._broker is None:
                    self._broker = redis.Redis.from_url(self._rt.settings.broker_url, socket_timeout=5)
                for queue in Queue:
                    queued.add_metric([queue.value], int(self._broker.llen(queue.value)))
            for name in self._rt.connections:
                paused.add_metric([name], 1 if pause_reason(self._rt, name) else 0)
        except Exception as exc:
            log.warning("metrics: cannot read Redis: %s", type(exc).__name__)
            return
        yield queued
        yield paused


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
