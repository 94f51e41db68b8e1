"""Settling jobs after a submission round or a lookup: the state each job's recipients imply.

A job with a call of unknown fate stays `submitting`; one whose recipients are all final becomes
terminal (`finished`, `expired`, `rejected`, `failed`); one with recipients still to send goes back to
`queued` (now, or after a backoff with jitter when the provider failed) or `scheduled` (held by its
windows); otherwise it is `submitted`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlmodel import col, select

from models.db import transaction, utc
from models.enums import JobState, Outcome
from models.tables import Job, Recipient, Submission, SubmissionState
from worker.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    RateLimitExceeded,
    RetryableProviderError,
)
from worker.runtime import Runtime, SendTask


def finish_recipient(row: Recipient, outcome: Outcome, reason: str, now: datetime) -> None:
    row.outcome, row.final, row.reason, row.updated_at = outcome, True, reason, now
    row.finished_ts = row.finished_ts or now


def backoff_s(attempt: int, cap_s: float) -> float:
    """Exponential backoff with full jitter: uniform in [0.5, 1] x min(cap, 2**attempt)."""
    base = min(cap_s, 2.0 ** max(attempt, 0))
    return base * random.uniform(0.5, 1.0)


def settle_jobs(
    rt: Runtime,
    job_ids: Sequence[str],
    *,
    failure: ProviderError | RateLimitExceeded | None = None,
    retry_at: datetime | None = None,
) -> list[SendTask]:
    """Move each job to the state its recipients imply; returns send tasks for jobs queued again."""
    now = rt.clock.now()
    requeue: list[SendTask] = []
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
            task = _settle(job, by_job.get(job.id, []), in_flight, now, rt, failure, retry_at)
            if task is not None:
                requeue.append(task)
            session.add(job)
        for rows_of_job in by_job.values():
            for row in rows_of_job:
                session.add(row)
    return requeue


def _settle(
    job: Job,
    rows: list[Recipient],
    in_flight: set[str],
    now: datetime,
    rt: Runtime,
    failure: ProviderError | RateLimitExceeded | None,
    retry_at: datetime | None,
) -> SendTask | None:
    job.updated_at = now
    if any(row.submission_id in in_flight for row in rows):
        return None  # fate unknown: stays `submitting` until looked up
    job.claim_token = None
    unsent = [row for row in rows if not row.final and row.submission_id is None]
    if not rows or all(row.final for row in rows):
        job.state = terminal_state(job, rows)
        job.finished_at = job.finished_at or now
        return None
    if not unsent:
        job.state = JobState.SUBMITTED
        job.submitted_at = job.submitted_at or now
        return None
    if retry_at is not None and isinstance(failure, ProviderAuthError):
        job.reason = f"waiting for valid credentials: {failure}"[:500]
        delay_s = rt.settings.retry_backoff_max_s
        job.state, job.due_at = JobState.QUEUED, now + timedelta(seconds=delay_s)
        return SendTask(job.id, express=job.qos_rank == 0, countdown_s=delay_s)
    if (
        retry_at is not None
        and isinstance(failure, RetryableProviderError)
        and not isinstance(failure, ProviderThrottled)
    ):
        job.attempts += 1
        job.reason = str(failure)[:500]
        if job.attempts > rt.settings.send_max_retries:
            for row in unsent:
                finish_recipient(row, Outcome.FAILED, f"retries exhausted: {failure}"[:500], now)
            job.reason = f"failed after {job.attempts} attempts: {failure}"[:500]
            job.state = terminal_state(job, rows) if all(r.final for r in rows) else JobState.SUBMITTED
            if job.state.is_terminal:
                job.finished_at = job.finished_at or now
            return None
        delay_s = backoff_s(job.attempts, rt.settings.retry_backoff_max_s)
        job.state, job.due_at = JobState.QUEUED, now + timedelta(seconds=delay_s)
        return SendTask(job.id, express=job.qos_rank == 0, countdown_s=delay_s)
    due = min((utc(row.due_at) or now for row in unsent), default=now)
    wait_s = 0.0
    if isinstance(failure, ProviderThrottled | RateLimitExceeded):
        wait_s = failure.retry_after_s or 1.0 if isinstance(failure, ProviderThrottled) else failure.wait_s
    job.due_at = max(due, now)
    if job.due_at > now:
        job.state = JobState.SCHEDULED
        return None
    job.state = JobState.QUEUED
    return SendTask(job.id, express=job.qos_rank == 0, countdown_s=wait_s or None)


def terminal_state(job: Job, rows: list[Recipient]) -> JobState:
    outcomes = {row.outcome for row in rows}
    if outcomes == {Outcome.EXPIRED}:
        job.reason = job.reason or (rows[0].reason if rows else None)
        return JobState.EXPIRED
    if (
        job.reason
        and job.reason.startswith("refused by the provider")
        and outcomes <= {Outcome.FAILED, Outcome.SUPPRESSED, Outcome.EXPIRED}
    ):
        return JobState.REJECTED
    if (
        job.reason
        and job.reason.startswith("failed after")
        and outcomes <= {Outcome.FAILED, Outcome.SUPPRESSED, Outcome.EXPIRED}
    ):
        return JobState.FAILED
    return JobState.FINISHED
