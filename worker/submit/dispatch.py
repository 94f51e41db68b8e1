"""Submitting: claim due jobs, coalesce compatible ones, call the provider, record what happened.

The use case behind the `smsq.send` task. One call to `submit_next(connection)`:

1. takes a send slot from the connection's limiter (at most about a second of waiting);
2. claims the head of the connection's backlog (express first, then oldest) and, for Retarus and
   Sendmode, every compatible queued job behind it (identical options, up to 3000 recipients) with a
   conditional update `queued -> submitting`, and commits;
3. for each provider call: commits a `Submission` row (`in_flight`) naming its recipients, closes the
   session, calls the provider, and records the provider's job id;
4. settles every claimed job: `submitted`, back to `queued`/`scheduled` (held recipients, retry), or
   a terminal state.

Under no backlog the head job goes out alone at once; under backlog one call carries many jobs.
Errors never cause a blind resend: a call whose fate is unknown stays `in_flight` until
`worker.submit.resolve` has looked it up at the provider.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import update
from sqlmodel import Session, col, select

from models.db import transaction, utc
from models.enums import JobState, Outcome, ProviderKey
from models.intervals import parse_datetime, parse_interval
from models.tables import Job, Recipient, Submission, SubmissionState, Suppression, new_id
from models.windows import poll_time, send_decision, validity_deadline
from worker.errors import (
    DeliveryUnknown,
    DuplicateJob,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    RateLimitExceeded,
    RetryableProviderError,
)
from worker.metrics.counters import RECIPIENTS_SUBMITTED
from worker.policy.credits import RECHECK_S as CREDIT_RECHECK_S
from worker.policy.credits import credit_pause
from worker.rate_limit.transport import call_kind, take_slot
from worker.runtime import Runtime, SendTask
from worker.submit.calls import ProviderCall, build_calls
from worker.submit.settle import finish_recipient, settle_jobs

log = logging.getLogger("smsq.delivery")

ResultKind = Literal["sent", "idle", "throttled", "retry", "unknown"]


@dataclass
class SubmitResult:
    """What one `submit_next` did; `wait_s` says when trying again makes sense."""

    kind: ResultKind
    wait_s: float = 0.0
    job_ids: list[str] = field(default_factory=list)
    calls: int = 0
    requeued: list[SendTask] = field(default_factory=list)
    resolve: list[str] = field(default_factory=list)  # submissions whose fate must be looked up


def submit_job(job_id: str, rt: Runtime) -> SubmitResult:
    """Run one submission round for the connection of `job_id` if that job is still waiting."""
    with transaction(rt.sessions) as session:
        job = session.get(Job, job_id)
        if job is None or job.state != JobState.QUEUED:
            return SubmitResult("idle")
        connection = job.connection
        due_at = utc(job.due_at)
    now = rt.clock.now()
    if due_at is not None and due_at > now:
        return SubmitResult("idle")  # the release sweep publishes it when due
    return submit_next(connection, rt)


def has_due_work(session: Session, connection: str, now: datetime) -> bool:
    query = select(Job.id).where(
        Job.connection == connection, Job.state == JobState.QUEUED, Job.due_at <= now
    )
    return session.exec(query.limit(1)).first() is not None


def submit_next(connection: str, rt: Runtime) -> SubmitResult:
    """Take a slot, claim the head of the backlog (plus compatible jobs) and submit it."""
    conn = rt.connection(connection)
    with transaction(rt.sessions) as session:
        if not has_due_work(session, connection, rt.clock.now()):
            return SubmitResult("idle")
    if conn.provider is ProviderKey.SENDMODE:
        # Jobs stay queued while the balance cannot cover the waiting SMS parts.
        if credit_pause(rt, connection) is not None:
            return SubmitResult("throttled", wait_s=CREDIT_RECHECK_S)
    limiter = rt.limiter(connection)
    wait_s = take_slot(limiter, "send")
    if wait_s:
        return SubmitResult("throttled", wait_s=wait_s)
    token = claim_batch(rt, connection, ProviderKey(conn.provider))
    if token is None:
        return SubmitResult("idle")
    return submit_claim(rt, connection, token)


def claim_batch(rt: Runtime, connection: str, provider: ProviderKey) -> str | None:
    """Claim the head job and its compatible followers; returns the claim token, None if nothing due."""
    now = rt.clock.now()
    limit = rt.settings.batch_max_recipients
    with transaction(rt.sessions) as session:
        due = select(Job).where(Job.connection == connection, Job.state == JobState.QUEUED, Job.due_at <= now)
        head = session.exec(due.order_by(col(Job.qos_rank), col(Job.created_at)).limit(1)).first()
        if head is None:
            return None
        ids = [head.id]
        total = head.recipient_count
        if not head.solo and provider is not ProviderKey.RETARUS_HTTP:
            followers = session.exec(
                select(Job.id, Job.recipient_count)
                .where(
                    Job.connection == connection,
                    Job.state == JobState.QUEUED,
                    Job.due_at <= now,
                    Job.options_key == head.options_key,
                    col(Job.solo).is_(False),
                    Job.id != head.id,
                )
                .order_by(col(Job.created_at))
                .limit(limit)
            ).all()
            for job_id, count in followers:
                if total + count > limit:
                    continue
                ids.append(job_id)
                total += count
        token = new_id()
        session.execute(
            update(Job)
            .where(col(Job.id).in_(ids), col(Job.state) == JobState.QUEUED)
            .values(state=JobState.SUBMITTING, claim_token=token, claimed_at=now, updated_at=now)
        )
    with transaction(rt.sessions) as session:
        claimed = session.exec(select(Job.id).where(Job.claim_token == token).limit(1)).first()
    return token if claimed is not None else None


def submit_claim(rt: Runtime, connection: str, token: str) -> SubmitResult:
    """Submit the recipients of the jobs claimed under `token` (one slot already taken) and settle them."""
    conn = rt.connection(connection)
    provider = ProviderKey(conn.provider)
    now = rt.clock.now()
    with transaction(rt.sessions) as session:
        jobs = list(session.exec(select(Job).where(Job.claim_token == token).order_by(col(Job.created_at))))
        job_ids = [job.id for job in jobs]
        pending = list(
            session.exec(
                select(Recipient)
                .where(col(Recipient.job_id).in_(job_ids), col(Recipient.final).is_(False))
                .where(col(Recipient.submission_id).is_(None))
                .order_by(col(Recipient.job_id), col(Recipient.message_index), col(Recipient.position))
            )
        )
        ready = _apply_local_rules(session, jobs, pending, provider, now)
        calls = build_calls(provider, jobs, ready)
    result = SubmitResult("sent", job_ids=job_ids)
    client = rt.client(connection)
    failure: ProviderError | RateLimitExceeded | None = None
    for index, call in enumerate(calls):
        sub = _open_submission(rt, connection, provider, jobs, call)
        try:
            with call_kind("send", prepaid=1 if index == 0 else 0):
                provider_job_id = call.run(client)
        except RateLimitExceeded as exc:
            _close_failed(rt, sub, "rate limit reached before the call was made")
            result.kind, result.wait_s, failure = "throttled", exc.wait_s, exc
            break
        except ProviderThrottled as exc:
            _close_failed(rt, sub, str(exc))
            result.kind, result.wait_s, failure = "throttled", exc.retry_after_s or 1.0, exc
            break
        except (DeliveryUnknown, DuplicateJob) as exc:
            _mark_unknown(rt, sub, str(exc))
            result.kind = "unknown"
            result.resolve.append(sub.id)
            failure = exc
            break
        except (RetryableProviderError, ProviderAuthError) as exc:
            # Wrong credentials are an operator's problem: keep the jobs and try again later.
            _close_failed(rt, sub, str(exc))
            result.kind, failure = "retry", exc
            break
        except PermanentProviderError as exc:
            if len(call.job_ids) > 1:
                _close_failed(rt, sub, str(exc))
                _split(rt, call.job_ids)  # one job's content may have spoiled the shared call
                continue
            _reject(rt, sub, call, str(exc))
            continue
        _accept(rt, sub, call, provider, provider_job_id)
        result.calls += 1
        RECIPIENTS_SUBMITTED.labels(connection).inc(len(call.recipients))
    if not calls:
        result.kind = "idle"
    retry_at = None
    if result.kind == "retry":
        retry_at = now
    result.requeued = settle_jobs(rt, job_ids, failure=failure, retry_at=retry_at)
    if result.kind == "retry" and result.requeued:
        result.wait_s = max(task.countdown_s or 0.0 for task in result.requeued)
    return result


def _apply_local_rules(
    session: Session, jobs: Sequence[Job], pending: list[Recipient], provider: ProviderKey, now: datetime
) -> list[Recipient]:
    """Skip suppressed numbers; for providers without windows, hold or expire recipients locally."""
    suppressed = set(
        session.exec(select(Suppression.dst).where(col(Suppression.dst).in_({r.dst for r in pending})))
    )
    by_id = {job.id: job for job in jobs}
    ready: list[Recipient] = []
    for row in pending:
        if row.dst in suppressed:
            finish_recipient(row, Outcome.SUPPRESSED, "number is on the suppression list (opted out)", now)
            session.add(row)
            continue
        if provider is not ProviderKey.RETARUS:
            job = by_id[row.job_id]
            options = job.request.get("options", {})
            blackouts = row.blackouts if row.blackouts is not None else options.get("blackoutPeriods", [])
            decision = send_decision(
                now,
                created_at=utc(job.created_at) or now,
                job_period=parse_datetime(options["jobPeriod"]) if options.get("jobPeriod") else None,
                validity_min=options.get("validityMin"),
                blackouts=[parse_interval(text) for text in blackouts],
            )
            if decision.action == "expire":
                finish_recipient(row, Outcome.EXPIRED, decision.reason, now)
                session.add(row)
                continue
            if decision.action == "hold":
                row.due_at = decision.at
                session.add(row)
                continue
        ready.append(row)
    return ready


def _open_submission(
    rt: Runtime, connection: str, provider: ProviderKey, jobs: Sequence[Job], call: ProviderCall
) -> Submission:
    """Commit the evidence of a call before making it: a crash mid-call leaves an `in_flight` row."""
    now = rt.clock.now()
    head = next(job for job in jobs if job.id == call.job_ids[0])
    options = head.request.get("options", {})
    job_period = parse_datetime(options["jobPeriod"]) if options.get("jobPeriod") else None
    start = max(utc(head.created_at) or now, job_period or now)
    deadline = validity_deadline(start, options.get("validityMin"))
    sub = Submission(
        connection=connection,
        provider=provider.value,
        state=SubmissionState.IN_FLIGHT,
        recipient_count=len(call.recipients),
        started_at=now,
        not_before=job_period,
        blackouts=options.get("blackoutPeriods"),
        poll_deadline=deadline + timedelta(seconds=rt.settings.validity_grace_s),
    )
    with transaction(rt.sessions) as session:
        session.add(sub)
        session.execute(
            update(Recipient)
            .where(col(Recipient.id).in_([row.id for row in call.recipients]))
            .values(submission_id=sub.id, updated_at=now)
        )
    return sub


def _accept(
    rt: Runtime, sub: Submission, call: ProviderCall, provider: ProviderKey, provider_job_id: str | None
) -> None:
    now = rt.clock.now()
    with transaction(rt.sessions) as session:
        row = session.get(Submission, sub.id)
        assert row is not None
        row.provider_job_id = provider_job_id
        row.completed_at = now
        ids = [r.id for r in call.recipients]
        if provider is ProviderKey.SENDMODE:
            # Sendmode has no status API: accepted is the final outcome.
            row.state, row.finished_at = SubmissionState.FINISHED, now
            values: dict[str, Any] = {
                "outcome": Outcome.ACCEPTED,
                "final": True,
                "finished_ts": now,
                "updated_at": now,
                "reason": "accepted by Sendmode (no delivery status available)",
            }
        else:
            row.state = SubmissionState.ACCEPTED
            row.next_poll_at = first_poll_at(row, now, rt)
            values = {"provider_job_id": provider_job_id, "updated_at": now}
        session.add(row)
        session.execute(update(Recipient).where(col(Recipient.id).in_(ids)).values(**values))


def first_poll_at(sub: Submission, now: datetime, rt: Runtime) -> datetime:
    """The first look at a new provider job: one poll interval on, never before jobPeriod or in a blackout."""
    return poll_time(
        now,
        attempt=0,
        base_s=rt.settings.poll_interval_s,
        max_s=rt.settings.poll_max_interval_s,
        job_period=utc(sub.not_before),
        blackouts=[parse_interval(text) for text in sub.blackouts or []],
        not_after=utc(sub.poll_deadline),
    )


def _close_failed(rt: Runtime, sub: Submission, reason: str) -> None:
    """The call did not create anything at the provider: release its recipients for another call."""
    now = rt.clock.now()
    with transaction(rt.sessions) as session:
        row = session.get(Submission, sub.id)
        assert row is not None
        row.state, row.reason, row.completed_at = SubmissionState.FAILED, reason[:500], now
        session.add(row)
        session.execute(
            update(Recipient)
            .where(col(Recipient.submission_id) == sub.id)
            .values(submission_id=None, updated_at=now)
        )


def _mark_unknown(rt: Runtime, sub: Submission, reason: str) -> None:
    with transaction(rt.sessions) as session:
        row = session.get(Submission, sub.id)
        assert row is not None
        row.reason = f"delivery unknown: {reason}"[:500]
        session.add(row)


def _reject(rt: Runtime, sub: Submission, call: ProviderCall, reason: str) -> None:
    now = rt.clock.now()
    with transaction(rt.sessions) as session:
        row = session.get(Submission, sub.id)
        assert row is not None
        row.state, row.reason, row.completed_at = SubmissionState.FAILED, reason[:500], now
        session.add(row)
        session.execute(
            update(Recipient)
            .where(col(Recipient.id).in_([r.id for r in call.recipients]))
            .values(
                outcome=Outcome.FAILED,
                final=True,
                reason=f"refused by the provider: {reason}"[:500],
                finished_ts=now,
                updated_at=now,
            )
        )
        for job_id in call.job_ids:
            job = session.get(Job, job_id)
            if job is not None:
                job.reason = f"refused by the provider: {reason}"[:500]
                session.add(job)


def _split(rt: Runtime, job_ids: Sequence[str]) -> None:
    """A shared call was refused: every job in it goes alone next time, so one bad job spoils only itself."""
    with transaction(rt.sessions) as session:
        session.execute(update(Job).where(col(Job.id).in_(job_ids)).values(solo=True))
