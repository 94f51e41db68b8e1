"""Building smsq's Celery application from settings (no signals, no process wiring).

`worker.app` (the `celery -A worker.app` entry point) builds the worker's app with this and wires its
signals; a producer process gets its own publishing app through `Runtime.celery`. Both are configured
identically, so a task published by either is consumed by the same workers.
"""

from __future__ import annotations

from celery import Celery

from worker.queues import KOMBU_QUEUES, TASK_ROUTES, Queue
from worker.schedule import SWEEP_TASKS, build_beat_schedule
from worker.settings import Settings


def create_celery_app(settings: Settings) -> Celery:
    """JSON only, results ignored, late acknowledgement with re-delivery when a worker process dies,
    one message prefetched per process, and one visibility timeout for every process.

    Task events are on (`-E` is not needed), so Flower shows the drain, resolve and enqueue tasks of
    every worker from the start; the beat sweeps (release, poll, reconcile: every few seconds) send no
    task events, so they do not bury the rest. Their health is beat's heartbeat in Redis
    (`worker.metrics.heartbeat`, shown by `smsq doctor` and the metrics service).
    """
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
        worker_send_task_events=True,
        task_annotations={name: {"send_events": False} for name in SWEEP_TASKS},
        beat_scheduler="worker.metrics.heartbeat:RecordingScheduler",
        beat_schedule=build_beat_schedule(settings),
        timezone="UTC",
        enable_utc=True,
        # Named by string: the worker runs scheduler's tasks too, but worker/ never imports scheduler/.
        include=["worker.tasks", "worker.callbacks.tasks", "scheduler.tasks"],
    )
    return app
