"""The callback sweep: note every outcome that changed since it was last noted, as outbox events.

It reads what the send path wrote and never hooks into it. A recipient is looked at while its job has an
open callback (`Job.callback_open`) and its outcome or finality differs from the one last noted
(`notified_outcome`, `notified_final`). In one transaction it writes the event row and records what it
noted, with a conditional update, so a sweep that runs twice writes each event once; the event id is a
uuid5 of the subject, the outcome and its finality, so the same change always has the same id.

When a job is terminal and nothing of it is left to note, its own final event is written and the job's
callback is closed: from then on the sweep no longer reads it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, and_, exists, not_, or_, update
from sqlmodel import Session, col, select

from models.db import fixed_in, transaction, utc
from models.enums import TERMINAL_JOB_STATES, Outcome
from models.tables import CallbackEvent, CallbackState, Job, Recipient
from worker.callbacks.spec import CallbackSpec
from worker.runtime import Runtime

#: Namespace of event ids (uuid5): the same subject, outcome and finality always give the same id.
EVENT_NAMESPACE = uuid.UUID("5f0c3a52-6f1e-4c1e-9a57-2b8f4f1e0c14")
#: Outcomes reported before a recipient is final when a callback asks for "all" events.
INTERMEDIATE_OUTCOMES = frozenset({Outcome.ACCEPTED, Outcome.SENT})
#: Recipients noted per transaction.
BATCH = 500


def event_id(subject_id: str, outcome: str, final: bool) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{subject_id}:{outcome}:{'final' if final else 'progress'}"))


def _iso(value: datetime | None) -> str | None:
    aware = utc(value)
    return aware.isoformat().replace("+00:00", "Z") if aware is not None else None


def _changed() -> Any:
    """SQL: the recipient's outcome or finality differs from what was last noted. Written exactly as the
    predicate of the partial index `ix_smsq_recipient_to_note`, so PostgreSQL reads only the recipients
    still to note, in any plan. A recipient of a job with a callback is stored with `notified_outcome`
    'pending' (`worker.producer`); one of a job without keeps NULL and is never in that index."""
    noted = col(Recipient.notified_outcome)
    return and_(
        noted.is_not(None),
        or_(
            col(Recipient.outcome) != noted,
            and_(col(Recipient.final).is_(True), col(Recipient.notified_final).is_(False)),
        ),
    )


@dataclass
class NoteReport:
    recipients: int = 0  # changes noted
    events: int = 0  # outbox rows written (recipient and job events)
    jobs_closed: int = 0


def recipient_payload(job: Job, row: Recipient, now: datetime) -> dict[str, Any]:
    """Ids and states only: never the number or the text."""
    options = (job.request or {}).get("options") or {}
    provider_status = " ".join(part for part in (row.process_status, row.status) if part) or None
    at = (row.finished_ts if row.final else None) or row.updated_at or now
    return {
        "id": event_id(row.id, row.outcome, row.final),
        "type": "recipient",
        "job_id": job.id,
        "recipient_id": row.id,
        "customer_ref": row.customer_ref or options.get("customerRef"),
        "outcome": row.outcome,
        "final": row.final,
        "provider_status": provider_status,
        "reason": row.reason,
        "at": _iso(at),
    }


def job_payload(job: Job, now: datetime) -> dict[str, Any]:
    options = (job.request or {}).get("options") or {}
    return {
        "id": event_id(job.id, job.state, True),
        "type": "job",
        "job_id": job.id,
        "recipient_id": None,
        "customer_ref": options.get("customerRef"),
        "outcome": job.state,
        "final": True,
        "provider_status": None,
        "reason": job.reason,
        "at": _iso(job.finished_at or job.updated_at or now),
    }


def _add_event(session: Session, rt: Runtime, job: Job, payload: dict[str, Any], now: datetime) -> bool:
    """Write one outbox row unless an event with its id exists already (the same change seen again)."""
    if session.get(CallbackEvent, payload["id"]) is not None:
        return False
    spec = CallbackSpec.model_validate(job.callback)
    session.add(
        CallbackEvent(
            id=payload["id"],
            job_id=job.id,
            recipient_id=payload["recipient_id"],
            connection=job.connection,
            kind=spec.kind,
            receiver=spec.receiver,
            payload=payload,
            state=CallbackState.PENDING,
            created_at=now,
            next_attempt_at=now,
            give_up_at=now + timedelta(seconds=rt.settings.callback_retry_period_s),
        )
    )
    return True


def changed_recipients_query() -> Any:
    """Recipients whose outcome changed, a batch: `ix_smsq_recipient_to_note` in its order (job,
    recipient), which holds only the recipients still to note. Their jobs are read next, by key
    (`_jobs_of`). No join and no `callback_open` filter here: PostgreSQL cannot know that nearly every
    such job has it open and, joining, may read all jobs instead; a change after the job's callback
    closed is noted without an event (`_note_recipients`)."""
    return select(Recipient).where(_changed()).order_by(col(Recipient.job_id), col(Recipient.id)).limit(BATCH)


def _jobs_of(session: Session, rows: Sequence[Recipient]) -> dict[str, Job]:
    ids = sorted({row.job_id for row in rows})
    return {job.id: job for job in session.exec(select(Job).where(col(Job.id).in_(ids)))} if ids else {}


def closable_jobs_query() -> Any:
    """Terminal jobs with an open callback and nothing left to note (states as SQL literals, exactly as in
    the predicate of `ix_smsq_job_callback_closable`, which holds only those jobs)."""
    pending = exists().where(col(Recipient.job_id) == col(Job.id), _changed())
    return (
        select(Job)
        .where(col(Job.callback_open), fixed_in(col(Job.state), sorted(TERMINAL_JOB_STATES)), not_(pending))
        .limit(BATCH)
    )


def _note_recipients(session: Session, rt: Runtime, now: datetime, report: NoteReport) -> int:
    rows = session.exec(changed_recipients_query()).all()
    jobs = _jobs_of(session, rows)
    for row in rows:
        job = jobs[row.job_id]
        noted = col(Recipient.notified_outcome)
        claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(Recipient)
            .where(
                col(Recipient.id) == row.id,
                noted.is_(None) if row.notified_outcome is None else noted == row.notified_outcome,
                col(Recipient.notified_final).is_(row.notified_final),
            )
            .values(notified_outcome=row.outcome, notified_final=row.final)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1 or not job.callback_open:
            continue  # another sweep noted it meanwhile; or a late change after the job's final event
        report.recipients += 1
        events = (job.callback or {}).get("events", "final")
        if row.final or (events == "all" and row.outcome in INTERMEDIATE_OUTCOMES):
            report.events += _add_event(session, rt, job, recipient_payload(job, row, now), now)
    return len(rows)


def _close_jobs(session: Session, rt: Runtime, now: datetime, report: NoteReport) -> None:
    jobs = session.exec(closable_jobs_query()).all()
    for job in jobs:
        closed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(Job)
            .where(col(Job.id) == job.id, col(Job.callback_open).is_(True))
            .values(callback_open=False)
            .execution_options(synchronize_session=False)
        )
        if closed.rowcount == 1:
            report.jobs_closed += 1
            report.events += _add_event(session, rt, job, job_payload(job, now), now)


def note_outcomes(rt: Runtime, *, max_rounds: int = 20) -> NoteReport:
    """Note changed outcomes into the outbox, a batch per transaction, until none is left (or max_rounds)."""
    report = NoteReport()
    for _ in range(max_rounds):
        now = rt.clock.now()
        with transaction(rt.sessions) as session:
            seen = _note_recipients(session, rt, now, report)
        if seen < BATCH:
            break
    now = rt.clock.now()
    with transaction(rt.sessions) as session:
        _close_jobs(session, rt, now, report)
    return report
