"""Release and reconcile sweeps: what the database says should move, made to move.

- `release`: scheduled jobs that became due are queued; jobs past their validity before submission
  are expired with a reason; every connection with due `queued` jobs is woken (at most one waiting
  drain per connection and queue, so this costs nothing when a drain is already on its way, and it
  brings back work whose wake-up the broker lost, e.g. when Redis restarted empty). A duplicate
  drain is harmless: claims are conditional.
- `reconcile`: jobs stuck in `submitting` past `submit_timeout_s` are resolved through the provider
  lookup (`worker.submit.resolve`), never by a blind resend; a claim that never reached a provider call is
  simply settled back to `queued`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import union_all, update
from sqlmodel import col, select

from models.db import fixed, fixed_in, transaction
from models.enums import JobState, Outcome
from models.tables import Job, Recipient, Submission, SubmissionState
from worker.metrics.open_counts import compact
from worker.runtime import Runtime
from worker.submit.resolve import resolve_submission
from worker.submit.settle import Requeued, settle_jobs
from worker.submit.submissions import move_jobs
from worker.tasks import wake_requeued

log = logging.getLogger("smsq.sweeps")

#: Jobs handled per sweep run (the next run takes the rest).
SWEEP_BATCH = 5000


@dataclass
class SweepReport:
    released: int = 0
    republished: int = 0  # connections woken
    expired: int = 0
    resolved: dict[str, int] = field(default_factory=dict)
    settled: int = 0


# The sweeps' reads. Each is served by a partial index of migration 0004 holding only the rows in the
# state it asks for, ordered by the time it compares; states are SQL literals (`fixed`), so a prepared
# statement's generic plan can use that index too (bench/queries.py times them, tests/ops EXPLAINs them).


def expired_query(now: datetime) -> Any:
    """Unsent jobs past their validity, oldest first (`ix_smsq_job_unsent_expires`; the order is the
    index's, so even a generic plan, which cannot know how many rows `<= now` matches, reads it)."""
    return (
        select(Job.id)
        .where(fixed_in(col(Job.state), [JobState.SCHEDULED, JobState.QUEUED]), col(Job.expires_at) <= now)
        .order_by(col(Job.expires_at))
        .limit(SWEEP_BATCH)
    )


def due_scheduled_query(now: datetime) -> Any:
    """Scheduled jobs that became due, earliest first (`ix_smsq_job_scheduled_due`, in its order)."""
    return (
        select(Job.id)
        .where(Job.state == fixed(JobState.SCHEDULED), Job.due_at <= now)
        .order_by(col(Job.due_at))
        .limit(SWEEP_BATCH)
    )


def waiting_connections_query(connections: Sequence[str], now: datetime) -> Any:
    """Each connection's due backlog head: (connection, QoS rank), one row per connection with due queued
    jobs. Per connection it is the claim's own head query (`ix_smsq_job_head`, read in (qos_rank,
    created_at) order up to the first due job), so it reads a few index entries whatever the backlog,
    instead of every due job's entry to find the lowest rank."""
    heads = [
        select(Job.connection, Job.qos_rank)
        .where(Job.connection == name, Job.state == fixed(JobState.QUEUED), Job.due_at <= now)
        .order_by(col(Job.qos_rank), col(Job.created_at))
        .limit(1)
        .subquery()
        for name in connections
    ]
    parts = [select(head.c.connection, head.c.qos_rank) for head in heads]
    return parts[0] if len(parts) == 1 else union_all(*parts)


def stuck_query(cutoff: datetime) -> Any:
    """Claims in `submitting` since before `cutoff` (`ix_smsq_job_submitting_claimed`)."""
    return (
        select(Job.id)
        .where(Job.state == fixed(JobState.SUBMITTING), col(Job.claimed_at) <= cutoff)
        .limit(SWEEP_BATCH)
    )


def in_flight_query(cutoff: datetime) -> Any:
    """Provider calls in flight since before `cutoff` (`ix_smsq_submission_in_flight_ids`, index-only)."""
    return (
        select(Submission.id)
        .where(Submission.state == fixed(SubmissionState.IN_FLIGHT), Submission.started_at <= cutoff)
        .limit(SWEEP_BATCH)
    )


def release(rt: Runtime) -> SweepReport:
    """Queue what became due, expire what can no longer be sent, publish what the broker lost."""
    now = rt.clock.now()
    report = SweepReport()
    with transaction(rt.sessions) as session:
        expired_ids = list(session.exec(expired_query(now)))
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
        due_ids = list(session.exec(due_scheduled_query(now)))
        report.released = move_jobs(session, due_ids, JobState.QUEUED, now, sources=[JobState.SCHEDULED])
        waiting = session.execute(waiting_connections_query(list(rt.connections), now)).all()
    for connection, rank in waiting:
        if rt.wake(connection, express=rank == 0):
            report.republished += 1
    return report


def reconcile(rt: Runtime) -> SweepReport:
    """Resolve jobs stuck in `submitting`: look their in-flight calls up; settle claims with no call."""
    now = rt.clock.now()
    report = SweepReport()
    cutoff = now - timedelta(seconds=rt.settings.submit_timeout_s)
    with transaction(rt.sessions) as session:
        stuck = list(session.exec(stuck_query(cutoff)))
        in_flight = list(session.exec(in_flight_query(cutoff)))
    with transaction(rt.sessions) as session:
        compact(session)  # the gauge counts' deltas of the last interval, folded (when nothing scrapes)
    requeue: list[Requeued] = []
    for sub_id in in_flight:
        resolution, tasks = resolve_submission(sub_id, rt)
        report.resolved[resolution] = report.resolved.get(resolution, 0) + 1
        requeue.extend(tasks)
    if stuck:
        requeue.extend(settle_jobs(rt, stuck))
        report.settled = len(stuck)
    wake_requeued(rt, requeue)
    return report
