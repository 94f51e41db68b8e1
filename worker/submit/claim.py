"""Claiming: which queued jobs of a connection go into the next provider call.

The head of the backlog (express first, then oldest) and, for Retarus and Sendmode, every compatible job
behind it (identical options, up to `batch_max_recipients` recipients) move `queued -> submitting` under
one claim token. On PostgreSQL the rows are selected `FOR UPDATE SKIP LOCKED`, so concurrent drains of one
connection take disjoint batches without waiting for each other; on SQLite (one writer at a time) the
conditional update makes a loser claim nothing, and it simply tries the next head.

No limiter slot is held while claiming: the slot is taken in the transport right before the request is
written, so a claim that finds nothing costs no slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from models.db import transaction
from models.enums import JobState, ProviderKey
from models.tables import Job, new_id
from worker.runtime import Runtime
from worker.submit.submissions import move_jobs

#: Attempts to claim when a concurrent drain took the head first (SQLite only; SKIP LOCKED never loses).
_CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class Claim:
    """Jobs claimed under one token; `full` says the batch hit its recipient limit (more may be waiting)."""

    token: str
    jobs: int
    recipients: int
    full: bool


def has_due_work(session: Session, connection: str, now: datetime) -> bool:
    query = select(Job.id).where(
        Job.connection == connection, Job.state == JobState.QUEUED, Job.due_at <= now
    )
    return session.exec(query.limit(1)).first() is not None


def claim_batch(rt: Runtime, connection: str, provider: ProviderKey) -> Claim | None:
    """Claim the head job and its compatible followers; None when nothing is due."""
    for _ in range(_CLAIM_ATTEMPTS):
        now = rt.clock.now()
        with transaction(rt.sessions) as session:
            picked = _pick(session, connection, provider, now, rt.settings.batch_max_recipients)
            if picked is None:
                return None
            ids, recipients = picked
            token = new_id()
            moved = move_jobs(
                session, ids, JobState.SUBMITTING, now, sources=[JobState.QUEUED],
                claim_token=token, claimed_at=now,
            )  # fmt: skip
        if moved:
            full = recipients >= rt.settings.batch_max_recipients
            return Claim(token, moved, recipients, full)
    return None


def _pick(
    session: Session, connection: str, provider: ProviderKey, now: datetime, limit: int
) -> tuple[list[str], int] | None:
    due = (Job.connection == connection, Job.state == JobState.QUEUED, Job.due_at <= now)
    head = session.exec(
        select(Job.id, Job.recipient_count, Job.options_key, Job.solo)
        .where(*due)
        .order_by(col(Job.qos_rank), col(Job.created_at))
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if head is None:
        return None
    head_id, total, options_key, solo = head
    ids = [head_id]
    if solo or provider is ProviderKey.RETARUS_HTTP or total >= limit:
        return ids, total
    followers = session.exec(
        select(Job.id, Job.recipient_count)
        .where(*due, Job.options_key == options_key, col(Job.solo).is_(False), Job.id != head_id)
        .order_by(col(Job.created_at))
        .limit(limit - total)
        .with_for_update(skip_locked=True)
    ).all()
    for job_id, count in followers:
        if total + count > limit:
            continue
        ids.append(job_id)
        total += count
    return ids, total
