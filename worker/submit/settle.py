"""Settling jobs after a submission round or a lookup: the state each job's recipients imply.

A job with a call of unknown fate stays `submitting`; one whose recipients are all final becomes
terminal (`finished`, `expired`, `rejected`, `failed`); one with recipients still to send goes back to
`queued` (now, or after a backoff with jitter when the provider failed) or `scheduled` (held by its
windows); otherwise it is `submitted`. Every move goes through `worker.submit.submissions`.

The fast path of a clean round (every claimed recipient went out in an accepted call) is not here: the
last acceptance moves the whole claim in its own transaction (`record.accept(settle=...)`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from models.db import one_of, transaction, utc
from models.enums import JobState, Outcome
from models.tables import Job, Recipient, Submission, SubmissionState
from worker.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    RateLimitExceeded,
    RetryableProviderError,
)
from worker.metrics.counters import SEND_RETRIES
from worker.runtime import Runtime
from worker.submit.submissions import clip, move_job

Failure = ProviderError | RateLimitExceeded


@dataclass(frozen=True)
class Requeued:
    """A job that is `queued` again: its connection must be woken within `delay_s`."""

    job_id: str
    connection: str
    express: bool
    delay_s: float = 0.0


def finish_recipient(row: Recipient, outcome: Outcome, reason: str, now: datetime) -> None:
    row.outcome, row.final, row.reason, row.updated_at = outcome, True, clip(reason), now
    row.finished_ts = row.finished_ts or now


def finish_recipients(
    session: Session, ids: Sequence[str], outcome: Outcome, reason: str, now: datetime
) -> int:
    """Many recipients final with one outcome and reason, in one UPDATE (only rows not final yet)."""
    if not ids:
        return 0
    result = session.execute(
        update(Recipient)
        .where(one_of(session, col(Recipient.id), ids), col(Recipient.final).is_(False))
        .values(outcome=outcome, final=True, reason=clip(reason), updated_at=now,
                finished_ts=func.coalesce(Recipient.finished_ts, now))
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    return int(getattr(result, "rowcount", 0) or 0)


def backoff_s(attempt: int, cap_s: float) -> float:
    """Exponential backoff with full jitter: uniform in [0.5, 1] x min(cap, 2**attempt)."""
    base = min(cap_s, 2.0 ** max(attempt, 0))
    return base * random.uniform(0.5, 1.0)


def settle_jobs(
    rt: Runtime,
    job_ids: Sequence[str],
    *,
    failure: Failure | None = None,
    retry: bool = False,
) -> list[Requeued]:
    """Move each job to the state its recipients imply; returns the jobs queued again."""
    if not job_ids:
        return []
    now = rt.clock.now()
    requeue: list[Requeued] = []
    with transaction(rt.sessions) as session:
        jobs = list(session.exec(select(Job).where(col(Job.id).in_(job_ids))))
        rows = list(session.exec(select(Recipient).where(col(Recipient.job_id).in_(job_ids))))
        sub_ids = {row.submission_id for row in rows if row.submission_id}
        in_flight = set(
            session.exec(
                select(Submission.id).where(
                    col(Submission.id).in_(sub_ids), Submission.state == SubmissionState.IN_FLIGHT
                )
            )
        )
        by_job: dict[str, list[Recipient]] = {}
        for row in rows:
            by_job.setdefault(row.job_id, []).append(row)
        for job in jobs:
            delay_s = _settle(job, by_job.get(job.id, []), in_flight, now, rt, failure if retry else None)
            if delay_s is not None:
                requeue.append(Requeued(job.id, job.connection, job.qos_rank == 0, delay_s))
            session.add(job)
        session.add_all(rows)
    return requeue


def _settle(
    job: Job, rows: list[Recipient], in_flight: set[str], now: datetime, rt: Runtime, failure: Failure | None
) -> float | None:
    """Settle one job; returns the delay after which it is due again when it was queued again."""
    if JobState(job.state).is_terminal:
        return None
    if any(row.submission_id in in_flight for row in rows):
        return None  # fate unknown: stays `submitting` until looked up
    unsent = [row for row in rows if not row.final and row.submission_id is None]
    if not rows or all(row.final for row in rows):
        move_job(job, terminal_state(job, rows), now)
        return None
    if not unsent:
        move_job(job, JobState.SUBMITTED, now)
        return None
    if isinstance(failure, ProviderAuthError):
        # Wrong credentials are an operator's problem: keep the jobs and try again later.
        delay_s = rt.settings.retry_backoff_max_s
        move_job(job, JobState.QUEUED, now, reason=f"waiting for valid credentials: {failure}")
        job.due_at = now + timedelta(seconds=delay_s)
        return delay_s
    if isinstance(failure, RetryableProviderError) and not isinstance(failure, ProviderThrottled):
        return _retry_or_fail(job, rows, unsent, now, rt, failure)
    wait_s = 0.0
    if isinstance(failure, ProviderThrottled):
        wait_s = failure.retry_after_s or 1.0
    elif isinstance(failure, RateLimitExceeded):
        wait_s = failure.wait_s
    due = max(min((utc(row.due_at) or now for row in unsent), default=now), now)
    if due > now:
        move_job(job, JobState.SCHEDULED, now)
        job.due_at = due
        return None
    move_job(job, JobState.QUEUED, now)
    job.due_at = now + timedelta(seconds=wait_s)
    return wait_s


def _retry_or_fail(
    job: Job, rows: list[Recipient], unsent: list[Recipient], now: datetime, rt: Runtime, failure: Failure
) -> float | None:
    job.attempts += 1
    if job.attempts > rt.settings.send_max_retries:
        for row in unsent:
            finish_recipient(row, Outcome.FAILED, f"retries exhausted: {failure}", now)
        job.reason = clip(f"failed after {job.attempts} attempts: {failure}")
        final = all(r.final for r in rows)
        move_job(job, terminal_state(job, rows) if final else JobState.SUBMITTED, now)
        return None
    delay_s = backoff_s(job.attempts, rt.settings.retry_backoff_max_s)
    SEND_RETRIES.labels(job.connection).inc()
    move_job(job, JobState.QUEUED, now, reason=str(failure))
    job.due_at = now + timedelta(seconds=delay_s)
    return delay_s


class _Reasoned(Protocol):
    reason: str | None


class _Finished(Protocol):
    @property
    def outcome(self) -> str: ...
    @property
    def reason(self) -> str | None: ...


def terminal_state(job: _Reasoned, rows: Sequence[_Finished]) -> JobState:
    """The final state of a job whose recipients are all final (fills the job's reason when they expired)."""
    outcomes = {row.outcome for row in rows}
    if outcomes == {Outcome.EXPIRED}:
        job.reason = job.reason or (rows[0].reason if rows else None)
        return JobState.EXPIRED
    lost = outcomes <= {Outcome.FAILED, Outcome.SUPPRESSED, Outcome.EXPIRED}
    if lost and job.reason and job.reason.startswith("refused by the provider"):
        return JobState.REJECTED
    if lost and job.reason and job.reason.startswith(("failed after", "cannot be sent")):
        return JobState.FAILED
    return JobState.FINISHED
