"""Recording a Retarus REST round's answers: every acceptance of the round in one transaction.

A Retarus REST round commits every call's evidence with its claim (`record.preparer`), makes the calls,
and then records here what came back: the accepted calls move `in_flight -> accepted` with their provider
job ids in one statement, the calls the round never made are closed `failed` (their recipients released),
and a clean, complete round moves its whole claim. Submissions move only as
`worker.submit.submissions` allows: a guarded UPDATE never overwrites a submission that another process
resolved meanwhile; that answer is recorded as a conflict instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlmodel import Session, col

from models.db import one_of, table_of, transaction, update_rows, utc
from models.enums import JobState
from models.tables import Job, Recipient, Submission, SubmissionState
from worker.runtime import Runtime
from worker.submit.record import Evidence, first_poll_at, record_conflict
from worker.submit.submissions import move_jobs

_S = SubmissionState
_SUBMISSIONS = table_of(Submission)
_RECIPIENTS = table_of(Recipient)
#: Why a call the round never made was closed.
UNMADE_REASON = "not made: the round stopped before this call"

_ACCEPT_TYPES = {"id": "varchar", "state": "varchar", "completed_at": "timestamptz",
                 "provider_job_id": "varchar", "next_poll_at": "timestamptz"}  # fmt: skip


def accept_round(
    rt: Runtime,
    accepted: Sequence[tuple[Evidence, str]],
    unmade: Sequence[str],
    *,
    settle: tuple[str, JobState] | None = None,
) -> bool:
    """Record a round of Retarus REST calls whose evidence was committed with the claim, in one
    transaction: each accepted call `in_flight -> accepted` with its provider job id (one statement);
    the calls the round never made (it stopped early) `in_flight -> failed`, their recipients released;
    with `settle` (claim token, target state) the whole claim moves too. A submission resolved otherwise
    meanwhile is not overwritten: it is recorded as a conflict, and the claim is then not moved here
    (returns False: the caller settles job by job)."""
    now = rt.clock.now()
    clean = True
    with transaction(rt.sessions) as session:
        if accepted:
            moved = update_rows(session, _SUBMISSIONS, "id", _ACCEPT_TYPES, {
                "id": [sub.id for sub, _ in accepted],
                "state": [_S.ACCEPTED] * len(accepted),
                "completed_at": [now] * len(accepted),
                "provider_job_id": [job_id for _, job_id in accepted],
                "next_poll_at": [first_poll_at(sub, now, rt) for sub, _ in accepted],
                "b_state": [_S.IN_FLIGHT] * len(accepted),
            }, guard="state")  # fmt: skip
            if moved < len(accepted):
                clean = False
                for sub_id, job_id in _not_moved(session, accepted, now):
                    record_conflict(session, sub_id, job_id, now)
        if unmade:
            closed = session.execute(
                update(_SUBMISSIONS)
                .where(one_of(session, _SUBMISSIONS.c.id, list(unmade)), _SUBMISSIONS.c.state == _S.IN_FLIGHT)
                .values(
                    state=_S.FAILED, completed_at=now, reason="not made: the round stopped before this call"
                )
            )
            if getattr(closed, "rowcount", 0):
                session.execute(
                    update(_RECIPIENTS)
                    .where(one_of(session, _RECIPIENTS.c.submission_id, list(unmade)))
                    .where(_RECIPIENTS.c.final.is_(False))
                    .values(submission_id=None, updated_at=now)
                )
        if settle is not None and clean:
            token, target = settle
            move_jobs(
                session, None, target, now,
                sources=[JobState.SUBMITTING], extra_where=[col(Job.claim_token) == token],
            )  # fmt: skip
    return clean


def _not_moved(
    session: Session, accepted: Sequence[tuple[Evidence, str]], now: datetime
) -> list[tuple[str, str]]:
    """The accepted calls whose submission was no longer `in_flight` (resolved by another process)."""
    ours = dict((sub.id, job_id) for sub, job_id in accepted)
    rows = session.execute(
        sa_select(_SUBMISSIONS.c.id, _SUBMISSIONS.c.state, _SUBMISSIONS.c.provider_job_id,
                  _SUBMISSIONS.c.completed_at)
        .where(one_of(session, _SUBMISSIONS.c.id, list(ours)))
    )  # fmt: skip
    return [
        (id_, ours[id_])
        for id_, state, job_id, completed in rows
        if not (state == _S.ACCEPTED and job_id == ours[id_] and utc(completed) == now)
    ]
