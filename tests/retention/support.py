"""Rows of every age and state, written directly (the way the send path leaves them), for the purge tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from models.db import SessionFactory, transaction
from models.tables import CallbackEvent, CallbackState, Job, Recipient, Submission, SubmissionState, new_id


@dataclass
class Seeder:
    """Writes jobs `age` before `now` (the database's clock) with their recipients and submissions."""

    sessions: SessionFactory
    now: datetime
    counter: int = 0
    made: dict[str, list[str]] = field(default_factory=dict)

    def submission(self, age: timedelta, state: str = SubmissionState.FINISHED) -> str:
        at = self.now - age
        sub = Submission(connection="default", provider="retarus", state=state, started_at=at, finished_at=at)
        with transaction(self.sessions) as session:
            session.add(sub)
        return sub.id

    def job(
        self,
        group: str,
        age: timedelta,
        state: str = "finished",
        *,
        recipients: int = 2,
        submission: str | None = None,
        callback_open: bool = False,
        callback_state: str | None = None,
        due_at: datetime | None = None,
    ) -> str:
        """One job in `state` last changed `age` ago, with `recipients` recipients in `submission`."""
        at = self.now - age
        final = state in ("finished", "expired", "rejected", "failed", "canceled")
        job = Job(
            connection="default",
            provider="retarus",
            state=state,
            request={"messages": [{"text": "x", "recipients": [{"dst": "+4917600000000"}]}], "options": {}},
            options_key="k",
            recipient_count=recipients,
            created_at=at - timedelta(minutes=5),
            updated_at=at,
            due_at=due_at or at - timedelta(minutes=5),
            finished_at=at if final else None,
            callback_open=callback_open,
        )
        with transaction(self.sessions) as session:
            session.add(job)
            session.flush()
            for position in range(recipients):
                self.counter += 1
                session.add(
                    Recipient(
                        job_id=job.id,
                        position=position,
                        dst=f"+49176{self.counter:08d}",
                        submission_id=submission,
                        outcome="delivered" if final else "pending",
                        final=final,
                        finished_ts=at if final else None,
                        updated_at=at,
                    )
                )
            if callback_state is not None:
                session.add(callback_event(job.id, callback_state, at))
        self.made.setdefault(group, []).append(job.id)
        return job.id


def callback_event(job_id: str, state: str, at: datetime) -> CallbackEvent:
    return CallbackEvent(
        id=new_id(),
        job_id=job_id,
        connection="default",
        kind="webhook",
        receiver="http://127.0.0.1:1",
        payload={"type": "job", "job_id": job_id},
        state=state,
        created_at=at,
        next_attempt_at=at,
        give_up_at=at + timedelta(days=1),
        completed_at=None if state == CallbackState.PENDING else at,
    )


def existing(sessions: SessionFactory, table: type, ids: list[str]) -> set[str]:
    with transaction(sessions) as session:
        return set(session.execute(select(table.id).where(table.id.in_(ids))).scalars())  # type: ignore[attr-defined]


def counts(session: Session) -> dict[str, int]:
    return {
        table.__tablename__: int(session.execute(select(func.count()).select_from(table)).scalar_one())
        for table in (Job, Recipient, Submission, CallbackEvent)
    }
