"""Resolving a provider call whose fate is unknown, without ever sending an SMS twice.

A submission is left `in_flight` when the worker died mid-call, the read timed out, the answer was
unreadable, or Retarus answered 409 to a duplicate. `resolve_submission` settles it:

- Retarus REST v1: list the jobs received around the attempt (every data center, every page) and read
  the recipients of each job we do not know; a job carrying one of the submission's recipient ids as
  customerRef is ours (-> `accepted`, polled as usual). If none does, the call is declared absent only
  once it is older than the settle time: the client's timeout plus `provider_accept_allowance_s`, on the
  database's clock. Then the exact body of the original call is sent again, with duplicateDetection, in a
  new submission (`resend_of` names the original): should the original still arrive, the provider
  refuses it as a duplicate, and if the original got there first the resend is refused and looked up.
- HTTP Simple and Sendmode have no way to look a message up. The call may have reached the provider,
  so its recipients are closed with outcome `unknown` and a reason, never resent.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import update
from sqlmodel import Session, col, select

from models.db import transaction, utc
from models.enums import Outcome, ProviderKey
from models.tables import Recipient, Submission, SubmissionState
from worker.errors import (
    DeliveryUnknown,
    DuplicateJob,
    PermanentProviderError,
    ProviderError,
    RateLimitExceeded,
)
from worker.metrics.counters import LOOKUPS, RECIPIENT_OUTCOMES, RECIPIENTS_SUBMITTED
from worker.providers import RetarusClient
from worker.rate_limit.transport import call_kind
from worker.runtime import Runtime
from worker.submit.calls import resend_call
from worker.submit.record import accept
from worker.submit.settle import Requeued, settle_jobs
from worker.submit.submissions import clip, move_submission_if

log = logging.getLogger("smsq.resolve")

Resolution = Literal["found", "absent", "resent", "unknown", "pending", "done"]

#: How far around the attempt's start the listing looks (slow acceptance, clock differences).
LOOKUP_SLACK = timedelta(minutes=2)
#: A resend's lookup also covers the original's window: the provider's duplicate window (10 min) and slack.
RESEND_LOOKBACK = timedelta(minutes=12)

_S = SubmissionState


def settle_time(rt: Runtime, connection: str) -> timedelta:
    """How old an unanswered call must be before "not listed" may mean "never arrived"."""
    conn = rt.connection(connection)
    return timedelta(
        seconds=conn.timeout_s + conn.connect_timeout_s + rt.settings.provider_accept_allowance_s
    )


def resolve_submission(sub_id: str, rt: Runtime) -> tuple[Resolution, list[Requeued]]:
    """Look an `in_flight` submission up at the provider; returns what happened and jobs queued again."""
    with transaction(rt.sessions) as session:
        sub = session.get(Submission, sub_id)
        if sub is None or sub.state != _S.IN_FLIGHT:
            return "done", []
        rows = list(session.exec(select(Recipient).where(Recipient.submission_id == sub_id)))
    job_ids = sorted({row.job_id for row in rows})
    if ProviderKey(sub.provider) is not ProviderKey.RETARUS:
        _close_unknown(rt, sub_id, f"{sub.provider} offers no lookup; not resent to avoid a duplicate SMS")
        return "unknown", settle_jobs(rt, job_ids)
    try:
        found = _look_up(rt, sub, {row.id for row in rows})
        LOOKUPS.labels(sub.connection, "found" if found is not None else "not_listed").inc()
    except (ProviderError, RateLimitExceeded) as exc:
        LOOKUPS.labels(sub.connection, "postponed").inc()
        log.info("lookup of submission %s postponed: %s", sub_id, type(exc).__name__)
        return "pending", []
    if found is not None:
        _note(rt, sub_id, "found at the provider by customerRef")
        accept(rt, sub_id, ProviderKey.RETARUS, found)
        return "found", settle_jobs(rt, job_ids)
    now = rt.clock.now()
    if now - (utc(sub.started_at) or now) < settle_time(rt, sub.connection):
        return "pending", []
    if sub.body is None:
        _close_absent(rt, sub_id, release=True)  # a row from before bodies were stored: send again anew
        return "absent", settle_jobs(rt, job_ids)
    resend_id = _open_resend(rt, sub)
    if resend_id is None:
        return "done", []
    return _resend(rt, resend_id, sub.body, job_ids, len(rows))


def _look_up(rt: Runtime, sub: Submission, ours: set[str]) -> str | None:
    """The provider job id that carries our recipients, or None when the listing shows none."""
    now = rt.clock.now()
    started = utc(sub.started_at) or now
    since = started - (RESEND_LOOKBACK if sub.resend_of else LOOKUP_SLACK)
    client = rt.client(sub.connection)
    assert isinstance(client, RetarusClient)
    with transaction(rt.sessions) as session:
        known = set(
            session.exec(
                select(Submission.provider_job_id)
                .where(col(Submission.provider_job_id).is_not(None))
                .where(Submission.started_at >= since - LOOKUP_SLACK)
            )
        )
    with call_kind("poll"):
        for provider_job_id in client.list_jobs(from_ts=since, to_ts=now + LOOKUP_SLACK):
            if provider_job_id in known:
                continue
            if any(report.customer_ref in ours for report in client.recipient_reports(provider_job_id)):
                return provider_job_id
    return None


def _open_resend(rt: Runtime, sub: Submission) -> str | None:
    """Original `in_flight -> absent`, and a new `in_flight` submission with the same body and recipients."""
    now = rt.clock.now()
    resend = Submission(
        connection=sub.connection,
        provider=sub.provider,
        state=_S.IN_FLIGHT,
        recipient_count=sub.recipient_count,
        started_at=now,
        not_before=sub.not_before,
        blackouts=sub.blackouts,
        poll_deadline=sub.poll_deadline,
        body=sub.body,
        resend_of=sub.id,
        reason="resend of an absent call, same body, duplicateDetection on",
    )
    with transaction(rt.sessions) as session:
        reason = f"{sub.reason or 'no answer'} -> not listed at the provider after the settle time; resent"
        if not move_submission_if(session, sub.id, _S.IN_FLIGHT, _S.ABSENT, now, reason=reason):
            return None  # resolved meanwhile by someone else
        session.add(resend)
        session.flush()
        session.execute(
            update(Recipient)
            .where(col(Recipient.submission_id) == sub.id)
            .values(submission_id=resend.id, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return resend.id


def _resend(
    rt: Runtime, resend_id: str, body: dict[str, object], job_ids: list[str], count: int
) -> tuple[Resolution, list[Requeued]]:
    """Send the stored body again. Any answer but acceptance or refusal leaves it in flight: looked up later."""
    with transaction(rt.sessions) as session:
        connection = session.get(Submission, resend_id).connection  # type: ignore[union-attr]
    client = rt.client(connection)
    try:
        with call_kind("send"):
            provider_job_id = resend_call(body)(client)
    except PermanentProviderError as exc:
        if isinstance(exc, DuplicateJob):
            _note(rt, resend_id, "duplicate refused: the original arrived after all; looked up next")
            return "pending", []
        _close_refused(rt, resend_id, str(exc))
        return "resent", settle_jobs(rt, job_ids)
    except (ProviderError, RateLimitExceeded) as exc:
        kind = "delivery unknown" if isinstance(exc, DeliveryUnknown) else "not sent"
        _note(rt, resend_id, f"resend {kind}: {type(exc).__name__}; looked up next")
        return "pending", []
    accept(rt, resend_id, ProviderKey.RETARUS, provider_job_id)
    RECIPIENTS_SUBMITTED.labels(connection).inc(count)
    return "resent", settle_jobs(rt, job_ids)


def _note(rt: Runtime, sub_id: str, text: str) -> None:
    with transaction(rt.sessions) as session:
        sub = session.get(Submission, sub_id)
        if sub is not None:
            sub.reason = clip(f"{sub.reason}; {text}" if sub.reason else text)
            session.add(sub)


def _close_refused(rt: Runtime, sub_id: str, reason: str) -> None:
    now = rt.clock.now()
    detail = clip(f"refused by the provider: {reason}")
    with transaction(rt.sessions) as session:
        if move_submission_if(session, sub_id, _S.IN_FLIGHT, _S.FAILED, now, reason=detail):
            _finish_open(session, sub_id, Outcome.FAILED, detail, now)


def _close_absent(rt: Runtime, sub_id: str, *, release: bool) -> None:
    now = rt.clock.now()
    with transaction(rt.sessions) as session:
        reason = "proven absent at the provider; recipients resubmitted"
        if move_submission_if(session, sub_id, _S.IN_FLIGHT, _S.ABSENT, now, reason=reason) and release:
            session.execute(
                update(Recipient)
                .where(col(Recipient.submission_id) == sub_id)
                .values(submission_id=None, updated_at=now)
                .execution_options(synchronize_session=False)
            )


def _close_unknown(rt: Runtime, sub_id: str, reason: str) -> None:
    now = rt.clock.now()
    with transaction(rt.sessions) as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        detail = clip(f"{sub.reason or 'delivery unknown'}; {reason}")
        if move_submission_if(session, sub_id, _S.IN_FLIGHT, _S.UNKNOWN, now, reason=detail):
            closed = _finish_open(session, sub_id, Outcome.UNKNOWN, detail or "", now)
            RECIPIENT_OUTCOMES.labels(sub.connection, Outcome.UNKNOWN.value).inc(closed)


def _finish_open(session: Session, sub_id: str, outcome: Outcome, reason: str | None, now: datetime) -> int:
    """The submission's recipients not final yet end with `outcome`; returns how many."""
    result = session.execute(
        update(Recipient)
        .where(col(Recipient.submission_id) == sub_id, col(Recipient.final).is_(False))
        .values(outcome=outcome, final=True, reason=reason, finished_ts=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
