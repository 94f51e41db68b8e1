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
from typing import Any, Protocol

from sqlalchemy import func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from models.db import one_of, table_of, transaction, update_rows, utc
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


@dataclass(slots=True)
class _JobCols:
    """The job columns settling reads and may write: columns, not ORM rows (a round settles up to 3,000
    jobs; loading them as `Job` objects parsed every stored request and cost ~16 MB per round)."""

    id: str
    state: str
    connection: str
    qos_rank: int
    attempts: int
    reason: str | None
    submitted_at: datetime | None
    finished_at: datetime | None
    claim_token: str | None
    due_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class _RecipientCols:
    """The recipient columns settling reads; `finish_recipient` changes them in memory."""

    id: str
    job_id: str
    submission_id: str | None
    final: bool
    due_at: datetime | None
    outcome: str
    reason: str | None
    finished_ts: datetime | None
    updated_at: datetime | None


_JOB_COLUMNS = tuple(col(getattr(Job, name)) for name in _JobCols.__slots__)
_RECIPIENT_COLUMNS = tuple(col(getattr(Recipient, name)) for name in _RecipientCols.__slots__)
#: What a settled job may have changed, written back guarded by the state read (PostgreSQL types).
_WRITTEN = {"id": "varchar", "state": "varchar", "updated_at": "timestamptz", "reason": "text",
            "submitted_at": "timestamptz", "finished_at": "timestamptz", "claim_token": "varchar",
            "due_at": "timestamptz", "attempts": "integer"}  # fmt: skip


def finish_recipient(row: _RecipientCols, outcome: Outcome, reason: str, now: datetime) -> None:
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
    """Move each job to the state its recipients imply; returns the jobs queued again.

    Three reads and at most two kinds of write, as columns: the jobs that moved in one UPDATE (from
    arrays on PostgreSQL, an executemany elsewhere), each only if still in the state read, and the
    recipients whose retries ran out in one UPDATE per reason."""
    if not job_ids:
        return []
    now = rt.clock.now()
    requeue: list[Requeued] = []
    with transaction(rt.sessions) as session:
        jobs = [_JobCols(*row) for row in session.execute(
            sa_select(*_JOB_COLUMNS).where(one_of(session, col(Job.id), job_ids))
        )]  # fmt: skip
        rows = [_RecipientCols(*row) for row in session.execute(
            sa_select(*_RECIPIENT_COLUMNS).where(one_of(session, col(Recipient.job_id), job_ids))
        )]  # fmt: skip
        sub_ids = {row.submission_id for row in rows if row.submission_id}
        in_flight = set(
            session.exec(
                select(Submission.id).where(
                    one_of(session, col(Submission.id), sub_ids), Submission.state == SubmissionState.IN_FLIGHT
                )
            )
        ) if sub_ids else set()  # fmt: skip
        by_job: dict[str, list[_RecipientCols]] = {}
        for row in rows:
            by_job.setdefault(row.job_id, []).append(row)
        moved: list[tuple[str, _JobCols]] = []  # (state read, job as settled)
        failed: dict[str, list[str]] = {}  # reason -> recipients whose retries ran out
        for job in jobs:
            read = job.state
            delay_s = _settle(
                job, by_job.get(job.id, []), in_flight, now, rt, failure if retry else None, failed
            )
            if job.updated_at == now or job.state != read:
                moved.append((read, job))
            if delay_s is not None:
                requeue.append(Requeued(job.id, job.connection, job.qos_rank == 0, delay_s))
        _write_jobs(session, moved)
        for reason, ids in failed.items():
            finish_recipients(session, ids, Outcome.FAILED, reason, now)
    return requeue


def _write_jobs(session: Session, moved: list[tuple[str, _JobCols]]) -> None:
    columns: dict[str, list[Any]] = {name: [getattr(job, name) for _, job in moved] for name in _WRITTEN}
    columns["b_state"] = [read for read, _ in moved]
    update_rows(session, table_of(Job), "id", _WRITTEN, columns, guard="state")


def _settle(
    job: _JobCols,
    rows: list[_RecipientCols],
    in_flight: set[str],
    now: datetime,
    rt: Runtime,
    failure: Failure | None,
    failed: dict[str, list[str]],
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
        return _retry_or_fail(job, rows, unsent, now, rt, failure, failed)
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
    job: _JobCols,
    rows: list[_RecipientCols],
    unsent: list[_RecipientCols],
    now: datetime,
    rt: Runtime,
    failure: Failure,
    failed: dict[str, list[str]],
) -> float | None:
    job.attempts += 1
    if job.attempts > rt.settings.send_max_retries:
        reason = f"retries exhausted: {failure}"
        for row in unsent:
            finish_recipient(row, Outcome.FAILED, reason, now)
        failed.setdefault(reason, []).extend(row.id for row in unsent)
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
