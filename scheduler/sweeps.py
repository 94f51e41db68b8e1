"""Release and reconcile sweeps: what the database says should move, made to move.

- `release`: scheduled jobs that became due are queued and published; jobs past their validity
  before submission are expired with a reason; `queued` jobs whose send task was not published,
  or was published longer than `queued_grace_s` ago and never ran (the broker lost it, e.g. Redis
  restarted empty), are published again. A duplicate task is harmless: claims are conditional.
- `reconcile`: jobs stuck in `submitting` past `submit_timeout_s` are resolved through the provider
  lookup (`worker.submit.resolve`), never by a blind resend; a claim that never reached a provider call is
  simply settled back to `queued`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import or_, update
from sqlmodel import col, select

from models.db import transaction
from models.enums import JobState, Outcome
from models.tables import Job, Recipient, Submission, SubmissionState
from worker.producer import publish_jobs
from worker.runtime import Runtime, SendTask
from worker.submit.resolve import resolve_submission
from worker.submit.settle import settle_jobs

log = logging.getLogger("smsq.sweeps")

#: Jobs handled per sweep run (the next run takes the rest).
SWEEP_BATCH = 5000


@dataclass
class SweepReport:
    released: int = 0
    republished: int = 0
    expired: int = 0
    resolved: dict[str, int] = field(default_factory=dict)
    settled: int = 0


def release(rt: Runtime) -> SweepReport:
    """Queue what became due, expire what can no longer be sent, publish what the broker lost."""
    now = rt.clock.now()
    report = SweepReport()
    grace = timedelta(seconds=rt.settings.queued_grace_s)
    with transaction(rt.sessions) as session:
        expired_ids = list(
            session.exec(
                select(Job.id)
                .where(col(Job.state).in_([JobState.SCHEDULED, JobState.QUEUED]), col(Job.expires_at) <= now)
                .limit(SWEEP_BATCH)
            )
        )
        if expired_ids:
            reason = "validity ended before the job could be submitted"
            session.execute(
                update(Recipient)
                .where(
                    col(Recipient.job_id).in_(expired_ids),
                    col(Recipient.final).is_(False),
                    col(Recipient.submission_id).is_(None),
                )
                .values(outcome=Outcome.EXPIRED, final=True, reason=reason, finished_ts=now, updated_at=now)
            )
    if expired_ids:
        report.expired = len(expired_ids)
        settle_jobs(rt, expired_ids)
    with transaction(rt.sessions) as session:
        due = list(
            session.exec(
                select(Job).where(Job.state == JobState.SCHEDULED, Job.due_at <= now).limit(SWEEP_BATCH)
            )
        )
        for job in due:
            job.state, job.updated_at = JobState.QUEUED, now
            session.add(job)
        report.released = len(due)
        lost = list(
            session.exec(
                select(Job)
                .where(Job.state == JobState.QUEUED, Job.due_at <= now, Job.updated_at <= now - grace)
                .where(or_(col(Job.published_at).is_(None), col(Job.published_at) <= now - grace))
                .limit(SWEEP_BATCH)
            )
        )
        report.republished = len(lost)
    tasks = [SendTask(job.id, express=job.qos_rank == 0) for job in [*due, *lost]]
    publish_jobs(rt, tasks)
    return report


def reconcile(rt: Runtime) -> SweepReport:
    """Resolve jobs stuck in `submitting`: look their in-flight calls up; settle claims with no call."""
    now = rt.clock.now()
    report = SweepReport()
    cutoff = now - timedelta(seconds=rt.settings.submit_timeout_s)
    with transaction(rt.sessions) as session:
        stuck = list(
            session.exec(
                select(Job.id)
                .where(Job.state == JobState.SUBMITTING, col(Job.claimed_at) <= cutoff)
                .limit(SWEEP_BATCH)
            )
        )
        in_flight = list(
            session.exec(
                select(Submission.id)
                .where(Submission.state == SubmissionState.IN_FLIGHT, Submission.started_at <= cutoff)
                .limit(SWEEP_BATCH)
            )
        )
    requeue: list[SendTask] = []
    for sub_id in in_flight:
        resolution, tasks = resolve_submission(sub_id, rt)
        report.resolved[resolution] = report.resolved.get(resolution, 0) + 1
        requeue.extend(tasks)
    if stuck:
        requeue.extend(settle_jobs(rt, stuck))
        report.settled = len(stuck)
    publish_jobs(rt, requeue)
    return report
