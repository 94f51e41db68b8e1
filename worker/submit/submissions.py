"""The one owner of job and submission state: every transition of either goes through this module.

The "never send twice" promise rests on these moves. A job is claimed (`queued -> submitting`) before a
provider call is built; a submission is committed `in_flight` before the call is made and leaves that
state exactly once: `accepted` (or `finished` where accepted is final), `failed` (known not sent),
`absent` (proven never received: its exact body is resent with duplicateDetection), or `unknown` (may
have been received, cannot be looked up: never resent). Any other move raises `IllegalTransition`.

Row-at-a-time moves (`move_job`, `move_submission`) check the table before they write; bulk moves
(`move_jobs`, `move_submission_if`) are conditional UPDATEs whose WHERE clause names the allowed
predecessors, so a concurrent writer that got there first makes them match nothing instead of
overwriting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.engine import CursorResult
from sqlmodel import Session, col

from models.db import one_of, table_of
from models.enums import JobState
from models.tables import Job, Submission, SubmissionState
from worker.errors import IllegalTransition

#: Longest reason stored on a row (jobs, recipients, submissions).
REASON_MAX = 500

_J = JobState
_TERMINAL = frozenset({_J.FINISHED, _J.EXPIRED, _J.REJECTED, _J.FAILED, _J.CANCELED})

#: Job state -> the states it may move to. Staying in the same state is always allowed (a touch).
JOB_MOVES: Mapping[JobState, frozenset[JobState]] = {
    _J.SCHEDULED: frozenset({_J.QUEUED, *_TERMINAL}),
    _J.QUEUED: frozenset({_J.SUBMITTING, _J.SCHEDULED, *_TERMINAL}),
    _J.SUBMITTING: frozenset({_J.QUEUED, _J.SCHEDULED, _J.SUBMITTED, *_TERMINAL} - {_J.CANCELED}),
    _J.SUBMITTED: frozenset({_J.QUEUED, _J.SCHEDULED, *_TERMINAL}),
    **{state: frozenset() for state in _TERMINAL},
}

_S = SubmissionState
#: Submission state -> the states it may move to.
SUBMISSION_MOVES: Mapping[str, frozenset[str]] = {
    _S.IN_FLIGHT: frozenset({_S.ACCEPTED, _S.FINISHED, _S.FAILED, _S.ABSENT, _S.UNKNOWN}),
    _S.ACCEPTED: frozenset({_S.FINISHED}),
    _S.FINISHED: frozenset(),
    _S.ABSENT: frozenset(),
    _S.FAILED: frozenset(),
    _S.UNKNOWN: frozenset(),
}


def clip(reason: str | None) -> str | None:
    """A reason as stored: at most `REASON_MAX` characters."""
    return None if reason is None else reason[:REASON_MAX]


def job_may_move(source: str, target: str) -> bool:
    return source == target or JobState(target) in JOB_MOVES[JobState(source)]


def submission_may_move(source: str, target: str) -> bool:
    return target in SUBMISSION_MOVES[source]


def job_predecessors(target: JobState) -> list[JobState]:
    """Every state from which a job may move to `target` (itself excluded)."""
    return [source for source, targets in JOB_MOVES.items() if target in targets]


class MovableJob(Protocol):
    """What `move_job` reads and stamps: a `Job` row, or the columns of one (`settle._JobCols`)."""

    id: str
    state: str
    updated_at: datetime
    reason: str | None
    submitted_at: datetime | None
    finished_at: datetime | None
    claim_token: str | None


def move_job(job: MovableJob, target: JobState, now: datetime, *, reason: str | None = None) -> None:
    """Move one loaded job, stamping the times that go with `target`; raises on an illegal move."""
    if not job_may_move(job.state, target):
        raise IllegalTransition("job", job.id, job.state, target)
    job.state, job.updated_at = target, now
    if reason is not None:
        job.reason = clip(reason)
    if target is JobState.SUBMITTED:
        job.submitted_at = job.submitted_at or now
    if target in _TERMINAL:
        job.finished_at = job.finished_at or now
    if target is not JobState.SUBMITTING:
        job.claim_token = None


def move_jobs(
    session: Session,
    job_ids: Iterable[str] | None,
    target: JobState,
    now: datetime,
    *,
    sources: Iterable[JobState] | None = None,
    extra_where: Iterable[Any] = (),
    **values: Any,
) -> int:
    """Move many jobs in one conditional UPDATE; returns how many moved.

    Only jobs in `sources` (default: every legal predecessor of `target`) move; others are left alone.
    `job_ids` None: the jobs are those `extra_where` selects (e.g. one claim token).
    """
    allowed = set(job_predecessors(target))
    chosen = set(sources) if sources is not None else allowed
    bad = chosen - allowed - {target}
    if bad:
        raise IllegalTransition("job", "*", ",".join(sorted(bad)), target)
    ids = None if job_ids is None else list(job_ids)
    if ids is not None and not ids:
        return 0
    if ids is None and not extra_where:
        raise ValueError("move_jobs without ids needs an extra_where that selects the jobs")
    stamps: dict[str, Any] = {"state": target, "updated_at": now}
    if target is not JobState.SUBMITTING:
        stamps["claim_token"] = None
    if target is JobState.SUBMITTED:
        stamps["submitted_at"] = now
    if target in _TERMINAL:
        stamps["finished_at"] = now
    if "reason" in values:
        values["reason"] = clip(values["reason"])
    statement = (
        update(Job)
        .where(col(Job.state).in_(sorted(chosen)), *extra_where)
        .values(**{**stamps, **values})
        .execution_options(synchronize_session=False)
    )
    if ids is not None:
        statement = statement.where(one_of(session, col(Job.id), ids))
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return int(result.rowcount or 0)


def move_submission(sub: Submission, target: str, now: datetime, *, reason: str | None = None) -> None:
    """Move one loaded submission; raises on an illegal move."""
    if not submission_may_move(sub.state, target):
        raise IllegalTransition("submission", sub.id, sub.state, target)
    sub.state = target
    if reason is not None:
        sub.reason = clip(reason)
    if target != SubmissionState.ACCEPTED:
        sub.completed_at = sub.completed_at or now
    if target in (SubmissionState.FINISHED, SubmissionState.UNKNOWN):
        sub.finished_at = sub.finished_at or now


def move_submission_if(
    session: Session, sub_id: str, source: str, target: str, now: datetime, **values: Any
) -> bool:
    """Move a submission only if it is still in `source` (one conditional UPDATE); True if it moved."""
    if not submission_may_move(source, target):
        raise IllegalTransition("submission", sub_id, source, target)
    stamps: dict[str, Any] = {"state": target, "completed_at": now}
    if target in (SubmissionState.FINISHED, SubmissionState.UNKNOWN):
        stamps["finished_at"] = now
    if "reason" in values:
        values["reason"] = clip(values["reason"])
    table = table_of(Submission)  # a Core UPDATE: once per provider call, no ORM bulk machinery needed
    statement = (
        update(table).where(table.c.id == sub_id, table.c.state == source).values(**{**stamps, **values})
    )
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return bool(result.rowcount)
