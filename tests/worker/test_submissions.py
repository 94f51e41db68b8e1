"""The state machine of jobs and submissions (worker/submit/submissions.py): every allowed move is made,
a sample of forbidden ones raises, and bulk moves are conditional (a concurrent writer wins, not us)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, SQLModel, create_engine

from models.enums import JobState
from models.tables import Job, Submission, SubmissionState
from worker.errors import IllegalTransition
from worker.submit.submissions import (
    JOB_MOVES,
    REASON_MAX,
    SUBMISSION_MOVES,
    move_job,
    move_jobs,
    move_submission,
    move_submission_if,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
TERMINAL = {JobState.FINISHED, JobState.EXPIRED, JobState.REJECTED, JobState.FAILED, JobState.CANCELED}
JOB_PAIRS = [(a, b) for a in JobState for b in JobState]
SUB_STATES = list(SUBMISSION_MOVES)


def job(state: JobState) -> Job:
    return Job(
        id=f"job-{state}", connection="default", provider="retarus", state=state, request={},
        options_key="k", created_at=NOW, updated_at=NOW, due_at=NOW, claim_token="t",
    )  # fmt: skip


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def test_the_table_covers_every_state_and_terminal_states_are_final() -> None:
    assert set(JOB_MOVES) == set(JobState)
    assert all(JOB_MOVES[state] == frozenset() for state in TERMINAL)
    assert set(SUBMISSION_MOVES) == {
        SubmissionState.IN_FLIGHT, SubmissionState.ACCEPTED, SubmissionState.FINISHED,
        SubmissionState.ABSENT, SubmissionState.FAILED, SubmissionState.UNKNOWN,
    }  # fmt: skip
    # The "never twice" core: only an in-flight call may be declared absent, failed or unknown.
    leaving = {target for source, targets in SUBMISSION_MOVES.items() if source != "in_flight" for target in targets}
    assert leaving == {SubmissionState.FINISHED}


@pytest.mark.parametrize(("source", "target"), JOB_PAIRS)
def test_every_job_move_is_allowed_or_raises_as_the_table_says(source: JobState, target: JobState) -> None:
    row = job(source)
    if source == target or target in JOB_MOVES[source]:
        move_job(row, target, NOW, reason="x" * (REASON_MAX + 50))
        assert row.state == target and row.updated_at == NOW
        assert row.reason is not None and len(row.reason) == REASON_MAX
        assert (row.finished_at is not None) == (target in TERMINAL)
        assert (row.submitted_at is not None) == (target is JobState.SUBMITTED)
        assert (row.claim_token is None) == (target is not JobState.SUBMITTING)
    else:
        with pytest.raises(IllegalTransition, match=f"{source} -> {target}"):
            move_job(row, target, NOW)
        assert row.state == source


@pytest.mark.parametrize(("source", "target"), list(itertools.product(SUB_STATES, SUB_STATES)))
def test_every_submission_move_is_allowed_or_raises_as_the_table_says(source: str, target: str) -> None:
    sub = Submission(connection="default", provider="retarus", state=source, started_at=NOW)
    if target in SUBMISSION_MOVES[source]:
        move_submission(sub, target, NOW)
        assert sub.state == target
    else:
        with pytest.raises(IllegalTransition):
            move_submission(sub, target, NOW)
        assert sub.state == source


def test_a_bulk_job_move_touches_only_rows_in_an_allowed_state(session: Session) -> None:
    rows = [job(state) for state in JobState]
    session.add_all(rows)
    session.commit()
    moved = move_jobs(session, [r.id for r in rows], JobState.SUBMITTING, NOW, claim_token="new")
    session.commit()
    states = {r.id: session.get(Job, r.id).state for r in rows}  # type: ignore[union-attr]
    assert moved == 1 and states["job-queued"] == JobState.SUBMITTING
    assert all(states[f"job-{s}"] == s for s in JobState if s is not JobState.QUEUED)
    with pytest.raises(IllegalTransition):
        move_jobs(session, ["job-finished"], JobState.QUEUED, NOW, sources=[JobState.FINISHED])


def test_a_late_acceptance_does_not_overwrite_a_resolved_submission(session: Session) -> None:
    sub = Submission(connection="default", provider="retarus", state=SubmissionState.IN_FLIGHT, started_at=NOW)
    session.add(sub)
    session.commit()
    assert move_submission_if(session, sub.id, SubmissionState.IN_FLIGHT, SubmissionState.ABSENT, NOW)
    # The worker whose call was declared absent finally hears "accepted": the conditional move refuses.
    assert not move_submission_if(
        session, sub.id, SubmissionState.IN_FLIGHT, SubmissionState.ACCEPTED, NOW, provider_job_id="J.1"
    )
    session.commit()
    session.expire_all()
    row = session.get(Submission, sub.id)
    assert row is not None and row.state == SubmissionState.ABSENT and row.provider_job_id is None
    with pytest.raises(IllegalTransition):
        move_submission_if(session, sub.id, SubmissionState.ABSENT, SubmissionState.ACCEPTED, NOW)
