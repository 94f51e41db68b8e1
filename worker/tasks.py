"""Thin Celery tasks: each takes ids only, loads what it needs and hands over to a use case.

`smsq.drain(connection)` drains one connection's backlog (worker/submit/dispatch.py) and, when it stops
with work left (throttled, paused, out of time), wakes the connection again for the moment it can go
on: one broker message per connection, not one per job. `smsq.send(job_id)` is kept for messages
published by earlier versions and applications: it drains the job's connection. Throttle waits never
count as retries, and provider retries are counted on the job row, not in Celery.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import redis
import sqlalchemy.exc
from celery import shared_task

from models.db import transaction
from models.tables import Job, Submission
from worker.metrics.counters import DRAIN_RUNS
from worker.producer import enqueue
from worker.queues import Queue
from worker.rate_limit.transport import WAKE_LEAD_S
from worker.runtime import Runtime, get_runtime
from worker.submit.dispatch import drain
from worker.submit.resolve import resolve_submission, settle_time
from worker.submit.settle import Requeued

log = logging.getLogger("smsq.tasks")

#: Errors of the database or Redis that pass: a task retries later instead of failing and being dropped.
TRANSIENT = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)

#: A drain's lease, renewed before every round: a killed drain frees its place within this time.
DRAIN_LEASE_S = 20.0
#: Longest delay a wake-up is ever published with (far below the visibility timeout).
MAX_COUNTDOWN_S = 30.0
#: When a call's fate is unknown, look it up after this many seconds (a quick "found" is common).
RESOLVE_DELAY_S = 3.0


def wake_requeued(rt: Runtime, requeued: Iterable[Requeued]) -> None:
    """Wake each connection with jobs queued again, once, at the earliest moment one is due."""
    earliest: dict[tuple[str, bool], float] = {}
    for item in requeued:
        key = (item.connection, item.express)
        earliest[key] = min(earliest.get(key, item.delay_s), item.delay_s)
    for (connection, express), delay_s in earliest.items():
        rt.wake(connection, express=express, delay_s=min(delay_s, MAX_COUNTDOWN_S))


# max_retries=None here, on the task: `self.retry(max_retries=None)` alone means Celery's default (3).
@shared_task(name="smsq.drain", bind=True, ignore_result=True, max_retries=None)
def drain_task(self: Any, connection: str) -> str:
    """Submit the due backlog of `connection` while slots come; wake again when it must stop."""
    try:
        return _drain(self, connection)
    except TRANSIENT as exc:
        # The database or Redis is away for a moment: try again later, as a wait, not a provider retry. The
        # exception's text may quote SQL parameters, so only its class is logged.
        delay_s = min(2.0**self.request.retries, MAX_COUNTDOWN_S)
        log.warning("drain of %s paused (%s); again in %.0f s", connection, type(exc).__name__, delay_s)
        raise self.retry(countdown=delay_s, max_retries=None) from None


def _drain(self: Any, connection: str) -> str:
    rt = get_runtime()
    queue = (
        Queue.EXPRESS
        if (self.request.delivery_info or {}).get("routing_key") == Queue.EXPRESS
        else Queue.SEND
    )
    rt.waker.started(connection, queue)
    lease = rt.waker.join(connection, cap=rt.settings.drain_concurrency, lease_s=DRAIN_LEASE_S)
    if lease is None:
        DRAIN_RUNS.labels(connection, "full").inc()
        return "full"  # enough drains of this connection run already; one of them goes on
    try:
        result = drain(
            rt, connection, heartbeat=lambda: rt.waker.renew(connection, lease, lease_s=DRAIN_LEASE_S)
        )
    finally:
        rt.waker.leave(connection, lease)
    DRAIN_RUNS.labels(connection, result.kind).inc()
    wake_requeued(rt, result.requeued)
    if result.kind != "idle":
        # Throttled: come back early enough to claim before the slot frees (the claim, not the slot, waits).
        delay_s = result.wait_s - WAKE_LEAD_S if result.kind == "throttled" else result.wait_s
        rt.wake(connection, delay_s=min(max(delay_s, 0.0), MAX_COUNTDOWN_S))
    for sub_id in result.resolve:
        rt.publish_named("smsq.resolve", (sub_id,), countdown_s=RESOLVE_DELAY_S)
    return result.kind


@shared_task(name="smsq.send", ignore_result=True)
def send(job_id: str) -> str:
    """Kept for messages of earlier versions: drain the connection of `job_id` (a no-op if it is gone)."""
    rt = get_runtime()
    with transaction(rt.sessions) as session:
        job = session.get(Job, job_id)
        connection, express = (job.connection, job.qos_rank == 0) if job is not None else (None, False)
    if connection is None:
        return "idle"
    rt.wake(connection, express=express)
    return "woken"


@shared_task(name="smsq.resolve", bind=True, ignore_result=True, max_retries=None)
def resolve(self: Any, submission_id: str) -> str:
    """Look up a provider call whose fate is unknown; try again while it stays pending."""
    try:
        return _resolve(submission_id)
    except TRANSIENT as exc:
        delay_s = min(2.0**self.request.retries, MAX_COUNTDOWN_S)
        log.warning("lookup of %s paused (%s); again in %.0f s", submission_id, type(exc).__name__, delay_s)
        raise self.retry(countdown=delay_s, max_retries=None) from None


def _resolve(submission_id: str) -> str:
    rt = get_runtime()
    resolution, requeued = resolve_submission(submission_id, rt)
    wake_requeued(rt, requeued)
    if resolution == "pending":
        with transaction(rt.sessions) as session:
            sub = session.get(Submission, submission_id)
            connection = sub.connection if sub is not None else "default"
        # Each look costs a listing call: look a few times within the settle time, not continuously.
        quarter_s = settle_time(rt, connection).total_seconds() / 4
        rt.publish_named(
            "smsq.resolve",
            (submission_id,),
            countdown_s=min(max(RESOLVE_DELAY_S * 2, quarter_s), MAX_COUNTDOWN_S),
        )
    return resolution


@shared_task(name="smsq.enqueue", ignore_result=True)
def enqueue_task(
    request: dict[str, Any],
    connection: str = "default",
    idempotency_key: str | None = None,
    callback: dict[str, Any] | bool | None = None,
) -> str:
    """Enqueue by task name, for applications that do not import smsq.

    Off unless SMSQ_ENQUEUE_BY_NAME is true: the request (numbers and text) travels in this one broker
    message, which breaks the rule that the broker holds ids only; send it with `kwargsrepr`/`argsrepr`
    set so Flower does not show it. Refused (disabled, or invalid: logged by field and rule only) requests
    are dropped; retrying cannot make them valid.
    """
    from worker.errors import InvalidRequest

    if not get_runtime().settings.enqueue_by_name:
        log.warning("smsq.enqueue is disabled (SMSQ_ENQUEUE_BY_NAME=false): a request was dropped")
        return ""
    try:
        handle = enqueue(request, connection=connection, idempotency_key=idempotency_key, callback=callback)
    except InvalidRequest as exc:
        log.warning("smsq.enqueue refused a request: %s", exc)
        return ""
    return handle.id
