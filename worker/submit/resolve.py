"""Resolving a provider call whose fate is unknown, without ever sending blindly twice.

A submission is left `in_flight` when the worker died mid-call, the read timed out, the answer was
unreadable, or Retarus answered 409 to a duplicate. `resolve_submission` settles it:

- Retarus REST v1: list the jobs received in the attempt's time window (every data center, every
  page) and read the recipients of each unknown job; a job carrying one of the submission's
  recipient ids as customerRef is ours (-> `accepted`, polled as usual). If none does, the call never
  arrived (-> `absent`): its recipients go back to their jobs and are submitted again.
- HTTP Simple and Sendmode have no way to look a message up. The call may have reached the provider,
  so its recipients are closed with outcome `unknown` and a reason, never resent.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Literal

from sqlalchemy import update
from sqlmodel import col, select

from models.db import transaction, utc
from models.enums import Outcome, ProviderKey
from models.tables import Recipient, Submission, SubmissionState
from worker.errors import ProviderError, RateLimitExceeded
from worker.providers import RetarusClient
from worker.rate_limit.transport import call_kind
from worker.runtime import Runtime, SendTask
from worker.submit.dispatch import first_poll_at
from worker.submit.settle import settle_jobs

log = logging.getLogger("smsq.resolve")

Resolution = Literal["found", "absent", "unknown", "pending", "done"]

#: How far around the attempt's start the listing looks (clock differences, slow acceptance).
LOOKUP_SLACK = timedelta(minutes=2)
#: A call younger than this may still be in the provider's pipeline: look again later, not "absent".
SETTLE_AFTER = timedelta(seconds=5)


def resolve_submission(sub_id: str, rt: Runtime) -> tuple[Resolution, list[SendTask]]:
    """Look an `in_flight` submission up at the provider; returns what was found and jobs to publish."""
    with transaction(rt.sessions) as session:
        sub = session.get(Submission, sub_id)
        if sub is None or sub.state != SubmissionState.IN_FLIGHT:
            return "done", []
        rows = list(session.exec(select(Recipient).where(Recipient.submission_id == sub_id)))
    ours = {row.id for row in rows}
    job_ids = sorted({row.job_id for row in rows})
    now = rt.clock.now()
    started = utc(sub.started_at) or now
    if ProviderKey(sub.provider) is not ProviderKey.RETARUS:
        _close_unknown(rt, sub_id, f"{sub.provider} offers no lookup; not resent to avoid a duplicate SMS")
        return "unknown", settle_jobs(rt, job_ids)
    client = rt.client(sub.connection)
    assert isinstance(client, RetarusClient)
    with transaction(rt.sessions) as session:
        known = set(
            session.exec(
                select(Submission.provider_job_id)
                .where(col(Submission.provider_job_id).is_not(None))
                .where(Submission.started_at >= started - LOOKUP_SLACK)
            )
        )
    try:
        with call_kind("poll"):
            candidates = client.list_jobs(from_ts=started - LOOKUP_SLACK, to_ts=now + LOOKUP_SLACK)
            for provider_job_id in candidates:
                if provider_job_id in known:
                    continue
                reports = client.recipient_reports(provider_job_id)
                if any(report.customer_ref in ours for report in reports):
                    _close_found(rt, sub_id, provider_job_id)
                    return "found", settle_jobs(rt, job_ids)
    except (ProviderError, RateLimitExceeded) as exc:
        log.info("lookup of submission %s postponed: %s", sub_id, type(exc).__name__)
        return "pending", []
    if now - started < SETTLE_AFTER:
        return "pending", []
    _close_absent(rt, sub_id)
    return "absent", settle_jobs(rt, job_ids)


def _close_found(rt: Runtime, sub_id: str, provider_job_id: str) -> None:
    now = rt.clock.now()
    with transaction(rt.sessions) as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        sub.state, sub.provider_job_id, sub.completed_at = SubmissionState.ACCEPTED, provider_job_id, now
        sub.next_poll_at = first_poll_at(sub, now, rt)
        sub.reason = (sub.reason or "") + " -> found at the provider by customerRef"
        session.add(sub)
        session.execute(
            update(Recipient)
            .where(col(Recipient.submission_id) == sub_id)
            .values(provider_job_id=provider_job_id, updated_at=now)
        )


def _close_absent(rt: Runtime, sub_id: str) -> None:
    now = rt.clock.now()
    with transaction(rt.sessions) as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        sub.state, sub.completed_at = SubmissionState.ABSENT, now
        sub.reason = (sub.reason or "") + " -> proven absent at the provider; recipients resubmitted"
        session.add(sub)
        session.execute(
            update(Recipient)
            .where(col(Recipient.submission_id) == sub_id)
            .values(submission_id=None, updated_at=now)
        )


def _close_unknown(rt: Runtime, sub_id: str, reason: str) -> None:
    now = rt.clock.now()
    with transaction(rt.sessions) as session:
        sub = session.get(Submission, sub_id)
        assert sub is not None
        detail = f"{sub.reason or 'delivery unknown'}; {reason}"[:500]
        sub.state, sub.completed_at, sub.finished_at, sub.reason = SubmissionState.UNKNOWN, now, now, detail
        session.add(sub)
        session.execute(
            update(Recipient)
            .where(col(Recipient.submission_id) == sub_id, col(Recipient.final).is_(False))
            .values(outcome=Outcome.UNKNOWN, final=True, reason=detail, finished_ts=now, updated_at=now)
        )
