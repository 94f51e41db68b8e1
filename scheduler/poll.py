"""Polling: learn each recipient's fate at a small cost in provider calls, and write it down.

A submission (one provider job) is polled only when due: its `next_poll_at` backs off from
`poll_interval_s` to `poll_max_interval_s`, is never before its jobPeriod, and moves out of its
blackout periods to their end. Past its validity plus grace it is reconciled once and closed, its
still-open recipients recorded as `unknown`.

Retarus REST v1, per connection and cycle: one listing of open jobs (all pages) says which due
submissions have closed; recipient reports are fetched only for those (one call each) and, every
`long_open_refresh_s`, for long-open ones so intermediate states (RUNNING) show. HTTP Simple: one
report call per due message. Sendmode has no status API: its recipients were final when accepted.
Every call goes through the connection's limiter as a "poll" call.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import defer
from sqlmodel import col, select

from models.db import fixed, transaction, utc
from models.enums import Outcome, ProviderKey
from models.intervals import Interval, parse_interval
from models.retarus import RecipientReport
from models.tables import Submission, SubmissionState
from models.windows import may_poll, poll_time
from scheduler.outcomes import Report, apply_reports, finish_jobs, read_statuses, write_statuses
from worker.errors import ProviderError, RateLimitExceeded
from worker.memory import batch_gate
from worker.metrics.counters import count_outcomes
from worker.providers import RetarusClient, RetarusHttpClient
from worker.rate_limit.transport import call_kind
from worker.runtime import Runtime

log = logging.getLogger("smsq.poll")

#: Submissions examined per connection and cycle: at most this many, at least POLL_BATCH_MIN, and in
#: between twice the calls the connection's whole budget allows between two cycles (`poll_batch`).
POLL_BATCH = 500
POLL_BATCH_MIN = 20
#: Listing window slack around our own submission times.
LISTING_SLACK = timedelta(minutes=5)


@dataclass
class PollReport:
    listings: int = 0
    reports: int = 0
    refreshes: int = 0
    finished: int = 0
    closed_unknown: int = 0
    postponed: bool = False


def poll_batch(rate_limit_calls: int, rate_limit_period_s: float, poll_interval_s: float) -> int:
    """How many due submissions one poll cycle takes. A closed provider job costs a call (its recipient
    reports), an open one none (the cycle's one listing covers it), so twice the calls the connection's
    budget allows between two cycles, within [POLL_BATCH_MIN, POLL_BATCH]: reading more only to stop at
    the limiter wastes the read, and the rest stay due, in order, for the next cycle."""
    per_cycle = rate_limit_calls * poll_interval_s / rate_limit_period_s
    return max(POLL_BATCH_MIN, min(POLL_BATCH, math.ceil(2 * per_cycle)))


def due_submissions_query(connection: str, now: datetime, limit: int = POLL_BATCH) -> Any:
    """The connection's accepted submissions due a poll, earliest first (`ix_smsq_submission_accepted_due`;
    the state is a SQL literal so a prepared statement's generic plan uses that partial index too). The
    exact request body is not read: a poll never needs it (a resend after "absent" does)."""
    return (
        select(Submission)
        .options(defer(Submission.body))  # type: ignore[arg-type]
        .where(
            Submission.connection == connection,
            Submission.state == fixed(SubmissionState.ACCEPTED),
            col(Submission.next_poll_at) <= now,
        )
        .order_by(col(Submission.next_poll_at))
        .limit(limit)
    )


def oldest_accepted_query(connection: str) -> Any:
    """When the connection's oldest open provider job started (`ix_smsq_submission_accepted_started`)."""
    return (
        select(Submission.started_at)
        .where(Submission.connection == connection, Submission.state == fixed(SubmissionState.ACCEPTED))
        .order_by(col(Submission.started_at))
        .limit(1)
    )


def poll_connection(rt: Runtime, connection: str) -> PollReport:
    """One polling cycle for one connection."""
    provider = ProviderKey(rt.connection(connection).provider)
    report = PollReport()
    if provider is ProviderKey.SENDMODE:
        return report
    now = rt.clock.now()
    conn = rt.connection(connection)
    limit = poll_batch(conn.rate_limit_calls, conn.rate_limit_period_s, rt.settings.poll_interval_s)
    with transaction(rt.sessions) as session:
        due = list(session.exec(due_submissions_query(connection, now, limit)))
    if not due:
        return report
    client = rt.client(connection)
    try:
        with call_kind("poll"):
            if provider is ProviderKey.RETARUS:
                assert isinstance(client, RetarusClient)
                _poll_retarus(rt, client, connection, due, now, report)
            else:
                assert isinstance(client, RetarusHttpClient)
                _poll_http_simple(rt, client, due, now, report)
    except (ProviderError, RateLimitExceeded) as exc:
        # The next cycle carries on where this one stopped; nothing is lost.
        log.info("polling %s stopped early: %s", connection, type(exc).__name__)
        report.postponed = True
    return report


def _poll_retarus(
    rt: Runtime,
    client: RetarusClient,
    connection: str,
    due: list[Submission],
    now: datetime,
    report: PollReport,
) -> None:
    with transaction(rt.sessions) as session:
        oldest = session.exec(oldest_accepted_query(connection)).first()
    oldest_at = utc(oldest) or now
    open_ids = set(client.list_jobs(from_ts=oldest_at - LISTING_SLACK, to_ts=now + LISTING_SLACK, open=True))
    report.listings += 1
    refresh_after = timedelta(seconds=rt.settings.long_open_refresh_s)
    for sub in due:
        assert sub.provider_job_id is not None
        if not _may_poll(sub, now):
            _reschedule(rt, sub, now)
            continue
        deadline = utc(sub.poll_deadline)
        past_deadline = deadline is not None and now >= deadline
        closed = sub.provider_job_id not in open_ids
        last = utc(sub.last_refresh_at) or utc(sub.started_at) or now
        # An open job carrying several recipients (usually coalesced jobs) is read on its normal poll
        # schedule, so recipients already final are recorded (and their jobs finish) without waiting for
        # the slowest one; a single-recipient job waits for the long-open refresh.
        refresh = not closed and (sub.recipient_count > 1 or now - last >= refresh_after)
        if closed or past_deadline or refresh:
            with batch_gate(sub.recipient_count):  # one large batch in memory per process (worker/memory.py)
                # Converted as read: the parsed answer (thousands of models) is freed before the rows are
                # written.
                reports = [_from_rest(item) for item in client.recipient_reports(sub.provider_job_id)]
                if refresh and not (closed or past_deadline):
                    report.refreshes += 1
                else:
                    report.reports += 1
                _record(
                    rt, sub, reports, now, provider_closed=closed, close_unknown=past_deadline, report=report
                )
                del reports
        else:
            _reschedule(rt, sub, now)


def _poll_http_simple(
    rt: Runtime, client: RetarusHttpClient, due: list[Submission], now: datetime, report: PollReport
) -> None:
    for sub in due:
        assert sub.provider_job_id is not None
        if not _may_poll(sub, now):
            _reschedule(rt, sub, now)
            continue
        answer = client.report(sub.provider_job_id)
        report.reports += 1
        deadline = utc(sub.poll_deadline)
        past_deadline = deadline is not None and now >= deadline
        item = Report(None, None, answer.process_status, answer.status)
        _record(rt, sub, [item], now, provider_closed=False, close_unknown=past_deadline, report=report)


def _may_poll(sub: Submission, now: datetime) -> bool:
    job_period, blackouts = _windows(sub)
    return may_poll(now, job_period=job_period, blackouts=blackouts)


def _from_rest(item: RecipientReport) -> Report:
    return Report(
        customer_ref=item.customer_ref,
        dst=item.dst,
        process_status=item.process_status,
        status=item.status,
        reason=item.reason,
        sms_id=item.sms_id,
        sent_ts=item.sent_ts,
        finished_ts=item.finished_ts,
    )


def _record(
    rt: Runtime,
    sub: Submission,
    reports: Sequence[Report],
    now: datetime,
    *,
    provider_closed: bool,
    close_unknown: bool,
    report: PollReport,
) -> None:
    """Write the reports of one submission in one transaction; finish it and its jobs when all are final."""
    with transaction(rt.sessions) as session:
        row_sub = session.get(Submission, sub.id)
        if row_sub is None or row_sub.state != SubmissionState.ACCEPTED:
            return
        rows = read_statuses(session, sub.id)
        was_open = {row.id for row in rows if not row.final}  # metric: outcomes reached now
        changed = {row.id: row for row in apply_reports(rows, reports, now)}
        if close_unknown:
            for row in rows:
                if not row.final:
                    row.outcome, row.final, row.updated_at = Outcome.UNKNOWN, True, now
                    row.reason = (
                        "still not final at the provider after its validity plus grace; no longer polled"
                    )
                    row.finished_ts = row.finished_ts or now
                    report.closed_unknown += 1
                    changed[row.id] = row
        write_statuses(session, changed.values())
        count_outcomes(sub.connection, [r.outcome for r in rows if r.final and r.id in was_open])
        if all(row.final for row in rows):
            row_sub.state = SubmissionState.FINISHED
            finished = [ts for ts in (utc(r.finished_ts) for r in rows) if ts is not None]
            row_sub.finished_at = max(finished, default=now)
            row_sub.next_poll_at = None
            report.finished += 1
        else:
            _schedule_next(row_sub, now, rt)
        row_sub.last_refresh_at = now
        session.add(row_sub)
        finish_jobs(session, {row.job_id for row in rows}, now)


def _windows(sub: Submission) -> tuple[datetime | None, list[Interval]]:
    return utc(sub.not_before), [parse_interval(text) for text in sub.blackouts or []]


def _schedule_next(sub: Submission, now: datetime, rt: Runtime) -> None:
    job_period, blackouts = _windows(sub)
    sub.next_poll_at = poll_time(
        now,
        attempt=sub.poll_attempt,
        base_s=rt.settings.poll_interval_s,
        max_s=rt.settings.poll_max_interval_s,
        job_period=job_period,
        blackouts=blackouts,
        not_after=utc(sub.poll_deadline),
    )
    sub.poll_attempt += 1


def _reschedule(rt: Runtime, sub: Submission, now: datetime) -> None:
    with transaction(rt.sessions) as session:
        row = session.get(Submission, sub.id)
        if row is None or row.state != SubmissionState.ACCEPTED:
            return
        _schedule_next(row, now, rt)
        session.add(row)
