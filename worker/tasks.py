"""Thin Celery tasks: each takes ids only, loads what it needs and hands over to a use case.

`smsq.send(job_id)` runs one submission round for the job's connection; whatever the round did,
the outcome is in the database, and the task only decides whether and when to publish again.
Throttle waits never count as retries: the task is published again with a short countdown instead
of `self.retry`, and provider retries are counted on the job row, not in Celery.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from models.db import transaction
from models.enums import JobState
from models.tables import Job
from worker.producer import enqueue, publish_jobs
from worker.runtime import SendTask, get_runtime
from worker.submit.dispatch import submit_job
from worker.submit.resolve import resolve_submission

log = logging.getLogger("smsq.tasks")

#: Longest countdown a send task is ever published with (far below the visibility timeout).
MAX_COUNTDOWN_S = 30.0
#: When a call's fate is unknown, look it up after this many seconds.
RESOLVE_DELAY_S = 3.0


@shared_task(name="smsq.send", ignore_result=True)
def send(job_id: str) -> str:
    """Submit the backlog head of the job's connection; publish again while the job still waits."""
    rt = get_runtime()
    result = submit_job(job_id, rt)
    follow_up = list(result.requeued)
    if result.kind in ("sent", "throttled") and job_id not in {task.job_id for task in follow_up}:
        with transaction(rt.sessions) as session:
            job = session.get(Job, job_id)
            still_waiting = job is not None and job.state == JobState.QUEUED
            express = job is not None and job.qos_rank == 0
        if still_waiting:
            countdown = min(result.wait_s, MAX_COUNTDOWN_S) if result.kind == "throttled" else None
            follow_up.append(SendTask(job_id, express=express, countdown_s=countdown))
    follow_up = [
        SendTask(t.job_id, t.express, min(t.countdown_s, MAX_COUNTDOWN_S) if t.countdown_s else None)
        for t in follow_up
    ]
    publish_jobs(rt, follow_up)
    for sub_id in result.resolve:
        rt.publish_named("smsq.resolve", (sub_id,), countdown_s=RESOLVE_DELAY_S)
    return result.kind


@shared_task(name="smsq.resolve", ignore_result=True)
def resolve(submission_id: str) -> str:
    """Look up a provider call whose fate is unknown; the reconcile sweep retries what stays pending."""
    rt = get_runtime()
    resolution, requeue = resolve_submission(submission_id, rt)
    publish_jobs(rt, requeue)
    if resolution == "pending":
        rt.publish_named("smsq.resolve", (submission_id,), countdown_s=RESOLVE_DELAY_S * 2)
    return resolution


@shared_task(name="smsq.enqueue", ignore_result=True)
def enqueue_task(
    request: dict[str, Any], connection: str = "default", idempotency_key: str | None = None
) -> str:
    """Enqueue by task name, for applications that do not import smsq.

    The request (its JSON form) travels in this one message; send it with
    `kwargsrepr`/`argsrepr` set so Flower does not show it. Invalid requests are logged by field
    and rule only and dropped (retrying cannot make them valid).
    """
    from worker.errors import InvalidRequest

    try:
        handle = enqueue(request, connection=connection, idempotency_key=idempotency_key)
    except InvalidRequest as exc:
        log.warning("smsq.enqueue refused a request: %s", exc)
        return ""
    return handle.id
