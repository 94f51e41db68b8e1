"""Claiming: which queued jobs of a connection go into the next provider call.

The head of the backlog (express first, then oldest) and every compatible job behind it (identical
options, up to `round_limit` recipients: one call's `batch_max_recipients`, or several small calls' worth)
move `queued -> submitting` under one claim token. On PostgreSQL the rows are selected `FOR UPDATE SKIP LOCKED`, so concurrent drains of one
connection take disjoint batches without waiting for each other; on SQLite (one writer at a time) the
conditional update makes a loser claim nothing, and it simply tries the next head.

No limiter slot is held while claiming: the slot is taken in the transport right before the request is
written, so a claim that finds nothing costs no slot. The claim's transaction also reads the claimed rows
and commits the calls' in-flight evidence (`prepare`), so a round is this transaction, the call, and one
more transaction that records the answer and settles the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlmodel import Session, col, select

from models.db import fixed, transaction
from models.enums import JobState, ProviderKey
from models.tables import Job, new_id
from worker.runtime import Runtime
from worker.submit.submissions import move_jobs

#: Attempts to claim when a concurrent drain took the head first (SQLite only; SKIP LOCKED never loses).
_CLAIM_ATTEMPTS = 3
#: A round never claims more recipients than one full Retarus call carries, so a round of small calls
#: holds no more rows and bodies in memory than one coalesced call does.
ROUND_MAX_RECIPIENTS = 3000


T = TypeVar("T")


@dataclass(frozen=True)
class Claim(Generic[T]):
    """Jobs claimed under one token; `full` says the batch hit its recipient limit (more may be waiting);
    `prepared` is what the caller's `prepare` built in the claim's own transaction."""

    token: str
    jobs: int
    recipients: int
    full: bool
    prepared: T


def claim_batch(
    rt: Runtime,
    connection: str,
    provider: ProviderKey,
    prepare: Callable[[Session, str, datetime], T],
    limit: int,
) -> Claim[T] | None:
    """Claim the head job and its compatible followers (up to `limit` recipients: `round_limit`), then run
    `prepare(session, token, now)` in the same transaction (it reads what the round needs and commits the
    calls' evidence); None when nothing is due."""
    for _ in range(_CLAIM_ATTEMPTS):
        now = rt.clock.now()
        with transaction(rt.sessions) as session:
            picked = _pick(session, connection, provider, now, limit)
            if picked is None:
                return None
            ids, recipients = picked
            token = new_id()
            moved = move_jobs(
                session, ids, JobState.SUBMITTING, now, sources=[JobState.QUEUED],
                claim_token=token, claimed_at=now,
            )  # fmt: skip
            if moved:
                prepared = prepare(session, token, now)
                full = recipients >= limit
                return Claim(token, moved, recipients, full, prepared)
    return None


def round_limit(rt: Runtime, connection: str, provider: ProviderKey) -> int:
    """Recipients one round may claim. One call's worth (`batch_max_recipients`) when calls are large; when
    they are small (HTTP Simple: one recipient each; Retarus with a small batch size) several calls' worth,
    so the claim's statements are shared by up to `round_max_calls` calls, but never more than a tenth of
    the window's send share (a round under a tight limit should not wait for its own later calls)."""
    batch = rt.settings.batch_max_recipients
    calls = min(rt.settings.round_max_calls, max(1, rt.limiter(connection).slots("send") // 10))
    if provider is ProviderKey.RETARUS_HTTP:
        return calls
    if provider is ProviderKey.SENDMODE:  # a Sendmode call carries one text to many numbers: one per round
        return batch
    return max(batch, min(batch * calls, ROUND_MAX_RECIPIENTS))


def _pick(
    session: Session, connection: str, provider: ProviderKey, now: datetime, limit: int
) -> tuple[list[str], int] | None:
    # The state as a constant in the SQL text: a generic (prepared) plan can then still use the partial
    # head and batch indexes (`WHERE state = 'queued'`).
    due = (Job.connection == connection, col(Job.state) == fixed(JobState.QUEUED), Job.due_at <= now)
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
    if total >= limit or (solo and provider is not ProviderKey.RETARUS_HTTP):  # HTTP Simple jobs are solo
        return ids, total
    if provider is ProviderKey.RETARUS_HTTP:
        # Every HTTP Simple call carries one recipient of one job: the round's jobs share no call, so any
        # due job may follow, in the head's order (express first).
        query = select(Job.id, Job.recipient_count).where(*due, Job.id != head_id)
        query = query.order_by(col(Job.qos_rank), col(Job.created_at))
    else:
        query = select(Job.id, Job.recipient_count).where(
            *due, Job.options_key == options_key, col(Job.solo).is_(False), Job.id != head_id
        )
        query = query.order_by(col(Job.created_at))
    followers = session.exec(query.limit(limit - total).with_for_update(skip_locked=True)).all()
    for job_id, count in followers:
        if total + count > limit:
            continue
        ids.append(job_id)
        total += count
    return ids, total
