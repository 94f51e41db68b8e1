"""The Celery application: `celery -A worker.app worker|beat|flower`.

JSON only, results ignored, late acknowledgement with re-delivery when a worker process dies, one
message prefetched per process, and one visibility timeout for every process (from settings).
Task arguments are ids only: message text, numbers and secrets never reach the broker or Flower.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_init, worker_process_init, worker_process_shutdown

from worker.queues import KOMBU_QUEUES, TASK_ROUTES, Queue
from worker.settings import Settings, get_settings


def create_celery_app(settings: Settings) -> Celery:
    from scheduler.beat import build_beat_schedule

    app = Celery("smsq", set_as_current=False)
    app.conf.update(
        broker_url=settings.broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=KOMBU_QUEUES,
        task_default_queue=Queue.SEND.value,
        task_routes=TASK_ROUTES,
        task_create_missing_queues=False,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_schedule=build_beat_schedule(settings),
        timezone="UTC",
        enable_utc=True,
        include=["worker.tasks", "scheduler.tasks"],
    )
    return app


app = create_celery_app(get_settings())


@worker_init.connect
@beat_init.connect
def _check_connections(**_: Any) -> None:
    # A worker or beat without usable provider settings stops at once, saying which variable is wrong.
    from worker.errors import ConfigurationError

    try:
        get_settings().connections()
    except ConfigurationError as exc:
        sys.stderr.write(f"smsq: {exc}\n")
        raise SystemExit(1) from None


@worker_init.connect
def _serve_metrics(**_: Any) -> None:
    # SMSQ_METRICS_PORT set: this worker serves Prometheus metrics (see docs/operations.md).
    from worker.metrics_server import serve_worker_metrics

    serve_worker_metrics(get_settings())


@worker_process_init.connect
def _open_runtime(**_: Any) -> None:
    # Each pool process builds its own clients and connections after the fork.
    from worker.runtime import reset_runtime

    reset_runtime()


@worker_process_shutdown.connect
def _close_runtime(**_: Any) -> None:
    from worker.runtime import reset_runtime

    reset_runtime()
