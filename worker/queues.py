"""The single list of smsq's queues and which task goes where."""

from __future__ import annotations

from enum import StrEnum

from kombu import Queue as KombuQueue  # type: ignore[attr-defined]


class Queue(StrEnum):
    EXPRESS = "smsq.express"  # drains woken by express jobs: consumed first
    SEND = "smsq.send"  # drains woken by normal jobs (at most one waiting per connection and queue)
    POLL = "smsq.poll"  # status polling and delivery-unknown lookups
    SWEEP = "smsq.sweep"  # beat sweeps: release, reconcile
    CALLBACK = "smsq.callback"  # outcome callbacks to the application: never ahead of sends or polls


#: Task name -> queue. Drains are routed per wake-up (express or normal) when published.
TASK_ROUTES: dict[str, dict[str, str]] = {
    "smsq.drain": {"queue": Queue.SEND},
    "smsq.send": {"queue": Queue.SEND},
    "smsq.enqueue": {"queue": Queue.SEND},
    "smsq.resolve": {"queue": Queue.POLL},
    "smsq.poll": {"queue": Queue.POLL},
    "smsq.release": {"queue": Queue.SWEEP},
    "smsq.reconcile": {"queue": Queue.SWEEP},
    "smsq.retention": {"queue": Queue.SWEEP},
    "smsq.callbacks": {"queue": Queue.CALLBACK},
}

#: Declared in this order; a worker started without -Q consumes all of them.
KOMBU_QUEUES = tuple(
    KombuQueue(queue.value, routing_key=queue.value)  # type: ignore[no-untyped-call]
    for queue in Queue
)
