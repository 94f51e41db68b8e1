"""Building smsq's Celery application from settings (no signals, no process wiring).

`worker.app` (the `celery -A worker.app` entry point) builds the worker's app with this and wires its
signals; a producer process gets its own publishing app through `Runtime.celery`. Both are configured
identically, so a task published by either is consumed by the same workers.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange  # type: ignore[attr-defined]
from kombu import Queue as KombuQueue  # type: ignore[attr-defined]

from worker.queues import KOMBU_QUEUES, TASK_ROUTES, Queue
from worker.redis_client import celery_broker
from worker.schedule import SWEEP_TASKS, build_beat_schedule
from worker.settings import Settings

#: Broker URL schemes of RabbitMQ (kombu's py-amqp transport).
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
#: The one exchange smsq's queues are bound to on RabbitMQ: a topic exchange, which Celery's native delayed
#: delivery (countdowns on quorum queues) needs; each queue's routing key is its own name.
AMQP_EXCHANGE = "smsq"


def is_amqp(broker_url: str) -> bool:
    return broker_url.startswith(AMQP_SCHEMES)


#: The shortest countdown Celery's native delayed delivery (RabbitMQ) can carry: it counts whole seconds.
AMQP_MIN_COUNTDOWN_S = 1.0


def broker_countdown(broker_url: str, countdown_s: float | None) -> float | None:
    """The countdown to publish a message with (None: at once).

    On RabbitMQ, Celery delays messages through native delayed delivery, in whole seconds, and refuses a
    countdown under one second (`ValueError: countdown must be a positive number`): the message was not
    published at all. There a sub-second countdown becomes one second, never zero, so a wake-up for jobs
    due in 0.3 s still comes once they are due rather than finding them not due yet."""
    if countdown_s is None or countdown_s <= 0:
        return None
    if countdown_s < AMQP_MIN_COUNTDOWN_S and is_amqp(broker_url):
        return AMQP_MIN_COUNTDOWN_S
    return countdown_s


def amqp_queues() -> tuple[Any, ...]:
    """smsq's queues on RabbitMQ: durable quorum queues (replicated over the cluster's nodes), in the same
    order as on Redis, so a worker without -Q consumes express drains from their own queue."""
    exchange = Exchange(AMQP_EXCHANGE, type="topic", durable=True)  # type: ignore[no-untyped-call]
    return tuple(
        KombuQueue(  # type: ignore[no-untyped-call]
            queue.value,
            exchange,
            routing_key=queue.value,
            durable=True,
            queue_arguments={"x-queue-type": "quorum"},
        )
        for queue in Queue
    )


def broker_options(settings: Settings) -> dict[str, Any]:
    """The broker-specific part of the configuration.

    Redis (redis://, or sentinel:// for a master found through Sentinel): one visibility timeout for
    every process. RabbitMQ (amqp://): quorum queues on a topic exchange, publisher confirms (a publish
    returns only once the broker has the message; with quorum queues, once a majority of nodes wrote it),
    and Celery's native delayed delivery for countdowns (it detects the quorum queues itself and then
    uses per-consumer prefetch instead of the global QoS quorum queues do not support).
    """
    url, extra = celery_broker(settings.broker_url)
    if is_amqp(url):
        return {
            "broker_url": url,
            "broker_transport_options": {"confirm_publish": True, **extra},
            "task_queues": amqp_queues(),
            "task_default_exchange": AMQP_EXCHANGE,
            "task_default_exchange_type": "topic",
            "task_default_routing_key": Queue.SEND.value,
            "task_default_queue_type": "quorum",
            "broker_native_delayed_delivery_queue_type": "quorum",
        }
    return {
        "broker_url": url,
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout_s, **extra},
        "task_queues": KOMBU_QUEUES,
    }


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
        broker_connection_retry_on_startup=True,
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=Queue.SEND.value,
        task_routes=TASK_ROUTES,
        task_create_missing_queues=False,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_annotations={name: {"send_events": False} for name in SWEEP_TASKS},
        beat_scheduler="worker.beat_leader:LeaderScheduler",
        beat_schedule=build_beat_schedule(settings),
        timezone="UTC",
        enable_utc=True,
        # Named by string: the worker runs scheduler's tasks too, but worker/ never imports scheduler/.
        include=["worker.tasks", "worker.callbacks.tasks", "scheduler.tasks"],
        **broker_options(settings),
    )
    return app
