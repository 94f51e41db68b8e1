"""Recording a submission round: load the claim, commit the calls' evidence, write their answers.

A call's `Submission` row is committed `in_flight` (with the exact Retarus body) before the call is
made and leaves that state once, through `worker.submit.submissions` (a Retarus REST round's answers are
written together by `worker.submit.answers`). An answer for a submission resolved otherwise meanwhile (a
late acceptance after "absent") is recorded as a conflict, never written over the resolution."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import String, cast, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from models.db import one_of, table_of, transaction, update_rows, utc
from models.enums import JobState, Outcome, ProviderKey
from models.intervals import parse_datetime, parse_interval
from models.tables import Job, Recipient, Submission, SubmissionState, Suppression, new_id
from models.windows import poll_time, send_decision, validity_deadline
from worker.metrics.counters import RECIPIENT_OUTCOMES, SUBMISSION_CONFLICTS
from worker.runtime import Runtime
from worker.submit.calls import ClaimedJob, Interned, Pending, ProviderCall, build_calls, claimed_job
from worker.submit.settle import finish_recipients
from worker.submit.submissions import clip, move_jobs, move_submission_if

log = logging.getLogger("smsq.record")

_S = SubmissionState
_SUBMISSIONS = table_of(Submission)
_RECIPIENTS = table_of(Recipient)
SUPPRESSED_REASON = "number is on the suppression list (opted out)"


@dataclass
class Prepared:
    """A claimed batch ready to go: its jobs, the calls carrying its ready recipients, the first call's
    committed in-flight submission, and `complete` when every job has recipients in those calls and none
    was held back (a clean round may then settle the whole claim at once)."""

    job_ids: list[str]
    jobs: list[ClaimedJob]
    calls: list[ProviderCall]
    subs: list[Evidence]
    complete: bool


def preparer(
    rt: Runtime, connection: str, provider: ProviderKey
) -> Callable[[Session, str, datetime], Prepared]:
    """What the claim's transaction runs: read the claimed rows, apply local rules, build the calls and
    add their in-flight submissions, all committed together with the claim."""

    def prepare(session: Session, token: str, now: datetime) -> Prepared:
        shared = Interned()
        jobs = [
            claimed_job(id_, request, key, utc(created) or now, utc(due) or now, shared)
            for id_, request, key, created, due in session.execute(
                sa_select(
                    col(Job.id), cast(col(Job.request), String), col(Job.options_key),
                    col(Job.created_at), col(Job.due_at),
                )  # the request as JSON text, parsed one row at a time
                .where(col(Job.claim_token) == token)
                .order_by(col(Job.created_at))
            )
        ]  # fmt: skip
        job_ids = [job.id for job in jobs]
        pending = [
            Pending(*row)
            for row in session.execute(
                sa_select(
                    col(Recipient.id), col(Recipient.job_id), col(Recipient.message_index),
                    col(Recipient.position), col(Recipient.dst), col(Recipient.blackouts),
                )
                .where(one_of(session, col(Recipient.job_id), job_ids), col(Recipient.final).is_(False))
                .where(col(Recipient.submission_id).is_(None))
                .order_by(col(Recipient.job_id), col(Recipient.message_index), col(Recipient.position))
            )
        ]  # fmt: skip
        ready = _apply_local_rules(session, jobs, pending, provider, now)
        calls = build_calls(provider, jobs, ready, rt.settings.batch_max_recipients)
        # Retarus REST: every call's evidence is committed with the claim; a crash part-way through the
        # round leaves unmade calls `in_flight` too, which `resolve` finds absent by lookup and resends.
        # HTTP Simple and Sendmode cannot look a call up (an unmade call in flight would be closed `unknown`,
        # never sent): each later call's evidence is committed with the previous call's acceptance.
        opened = calls if provider is ProviderKey.RETARUS else calls[:1]
        subs = [_submission(rt, connection, provider, jobs, call, now) for call in opened]
        _open(session, subs, opened, now)
        complete = len(ready) == len(pending) and {row.job_id for row in ready} == set(job_ids)
        return Prepared(job_ids, jobs, calls, subs, complete)

    return prepare


def _apply_local_rules(
    session: Session, jobs: Sequence[ClaimedJob], pending: list[Pending], provider: ProviderKey, now: datetime
) -> list[Pending]:
    """Skip suppressed numbers; for providers without windows, hold or expire recipients locally."""
    suppressed_dsts = set(
        session.exec(
            select(Suppression.dst).where(one_of(session, col(Suppression.dst), {r.dst for r in pending}))
        )
    )
    by_id = {job.id: job for job in jobs}
    ready: list[Pending] = []
    finished: dict[tuple[Outcome, str], list[str]] = {}  # (outcome, reason) -> recipient ids
    held: list[dict[str, Any]] = []
    for row in pending:
        if row.dst in suppressed_dsts:
            finished.setdefault((Outcome.SUPPRESSED, SUPPRESSED_REASON), []).append(row.id)
            continue
        if provider is not ProviderKey.RETARUS:
            job = by_id[row.job_id]
            options = job.options
            blackouts = row.blackouts if row.blackouts is not None else options.get("blackoutPeriods", [])
            decision = send_decision(
                now,
                created_at=job.created_at,
                job_period=parse_datetime(options["jobPeriod"]) if options.get("jobPeriod") else None,
                validity_min=options.get("validityMin"),
                blackouts=[parse_interval(text) for text in blackouts],
            )
            if decision.action == "expire":
                finished.setdefault((Outcome.EXPIRED, decision.reason), []).append(row.id)
                continue
            if decision.action == "hold":
                held.append({"id": row.id, "due_at": decision.at, "updated_at": now})
                continue
        ready.append(row)
    for (outcome, reason), ids in finished.items():
        finish_recipients(session, ids, outcome, reason, now)
    if held:
        session.execute(update(Recipient), held)  # bulk UPDATE by primary key
    return ready


@dataclass(slots=True)
class Evidence:
    """A call's `Submission` row as committed `in_flight` before the call is made (built as plain values:
    one per provider call, so no ORM object per call); `row()` is what the INSERT writes."""

    id: str
    connection: str
    provider: str
    recipient_count: int
    started_at: datetime
    not_before: datetime | None
    blackouts: list[str] | None
    poll_deadline: datetime | None
    body: dict[str, Any] | None

    def row(self) -> dict[str, Any]:
        return {
            **_UNSET, "id": self.id, "connection": self.connection, "provider": self.provider,
            "state": _S.IN_FLIGHT, "recipient_count": self.recipient_count, "started_at": self.started_at,
            "not_before": self.not_before, "blackouts": self.blackouts, "poll_deadline": self.poll_deadline,
            "body": self.body,
        }  # fmt: skip


#: The submission columns a new row leaves at their defaults.
_UNSET: dict[str, Any] = {
    "provider_job_id": None, "completed_at": None, "finished_at": None, "next_poll_at": None,
    "poll_attempt": 0, "last_refresh_at": None, "reason": None, "resend_of": None, "conflict": None,
}  # fmt: skip


class PollWindow(Protocol):
    """What the first poll time of a submission depends on (an `Evidence` or a `Submission` row)."""

    not_before: datetime | None
    blackouts: list[str] | None
    poll_deadline: datetime | None


def _submission(
    rt: Runtime,
    connection: str,
    provider: ProviderKey,
    jobs: Sequence[ClaimedJob],
    call: ProviderCall,
    now: datetime,
) -> Evidence:
    """The evidence of a call, committed before it is made: a crash mid-call leaves an `in_flight` row."""
    head = next(job for job in jobs if job.id == call.job_ids[0])
    options = head.options
    job_period = parse_datetime(options["jobPeriod"]) if options.get("jobPeriod") else None
    start = max(head.created_at, job_period or now)
    deadline = validity_deadline(start, options.get("validityMin"))
    return Evidence(
        id=new_id(),
        connection=connection,
        provider=provider.value,
        recipient_count=len(call.recipients),
        started_at=now,
        not_before=job_period,
        blackouts=options.get("blackoutPeriods"),
        poll_deadline=deadline + timedelta(seconds=rt.settings.validity_grace_s),
        body=call.body,
    )


def new_submission(
    rt: Runtime, connection: str, provider: ProviderKey, jobs: Sequence[ClaimedJob], call: ProviderCall
) -> Evidence:
    """The evidence of a later call of the round, not committed yet (`accept(then_open=...)` does)."""
    return _submission(rt, connection, provider, jobs, call, rt.clock.now())


def open_submission(
    rt: Runtime, connection: str, provider: ProviderKey, jobs: Sequence[ClaimedJob], call: ProviderCall
) -> Evidence:
    """Commit the evidence of a later call of the round in a transaction of its own, before making it."""
    now = rt.clock.now()
    sub = _submission(rt, connection, provider, jobs, call, now)
    with transaction(rt.sessions) as session:
        _open(session, [sub], [call], now)
    return sub


def _open(session: Session, subs: list[Evidence], calls: list[ProviderCall], now: datetime) -> None:
    # Core statements on the tables: the rows are built here, no unit of work or ORM bulk machinery to run
    # (this is once per provider call).
    if not subs:
        return
    session.execute(insert(_SUBMISSIONS), [sub.row() for sub in subs])
    if len(subs) == 1:  # one call: its recipients (up to 3,000) all point to the one submission
        ids = [row.id for row in calls[0].recipients]
        session.execute(
            update(_RECIPIENTS)
            .where(one_of(session, _RECIPIENTS.c.id, ids))
            .values(submission_id=subs[0].id, updated_at=now)
        )
        return
    # Several small calls: every recipient with its own call's submission, in one statement.
    pairs = [(row.id, sub.id) for sub, call in zip(subs, calls, strict=True) for row in call.recipients]
    update_rows(session, _RECIPIENTS, "id", _OPEN_TYPES, {
        "id": [rid for rid, _ in pairs], "submission_id": [sid for _, sid in pairs],
        "updated_at": [now] * len(pairs),
    })  # fmt: skip


_OPEN_TYPES = {"id": "varchar", "submission_id": "varchar", "updated_at": "timestamptz"}


def accept(
    rt: Runtime,
    sub: Evidence | str,
    provider: ProviderKey,
    provider_job_id: str | None,
    *,
    settle: tuple[str, JobState] | None = None,
    then_open: tuple[Evidence, ProviderCall] | None = None,
) -> bool:
    """The provider accepted the call: `in_flight -> accepted` (Sendmode: `finished`, accepted is final).

    `settle` (claim token, target state): the round was clean and complete, so the whole claim moves in
    this same transaction, as does the evidence of `then_open`, the round's next call (one transaction per
    call). Returns False, and records a conflict, when the submission was resolved otherwise meanwhile."""
    now = rt.clock.now()
    with transaction(rt.sessions) as session:
        if then_open is not None:
            _open(session, [then_open[0]], [then_open[1]], now)
        row: Evidence | Submission | None = session.get(Submission, sub) if isinstance(sub, str) else sub
        assert row is not None
        if provider is ProviderKey.SENDMODE:
            moved = move_submission_if(session, row.id, _S.IN_FLIGHT, _S.FINISHED, now)
            values: dict[str, Any] = {
                "outcome": Outcome.ACCEPTED,
                "final": True,
                "finished_ts": now,
                "updated_at": now,
                "reason": "accepted by Sendmode (no delivery status available)",
            }
        else:
            # The provider's job id is the submission's: its recipients point to it by `submission_id`,
            # so acceptance does not rewrite 3,000 recipient rows.
            moved = move_submission_if(
                session, row.id, _S.IN_FLIGHT, _S.ACCEPTED, now,
                provider_job_id=provider_job_id, next_poll_at=first_poll_at(row, now, rt),
            )  # fmt: skip
        if not moved:
            record_conflict(session, row.id, provider_job_id, now)
            return False
        if provider is ProviderKey.SENDMODE:  # accepted is final on Sendmode
            accepted = session.execute(
                update(Recipient)
                .where(col(Recipient.submission_id) == row.id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            count = getattr(accepted, "rowcount", 0)
            RECIPIENT_OUTCOMES.labels(row.connection, Outcome.ACCEPTED.value).inc(count)
        if settle is not None:
            token, target = settle
            move_jobs(
                session,
                None,
                target,
                now,
                sources=[JobState.SUBMITTING],
                extra_where=[col(Job.claim_token) == token],
            )
    return True


def record_conflict(session: Session, sub_id: str, provider_job_id: str | None, now: datetime) -> None:
    current = session.get(Submission, sub_id, populate_existing=True)
    assert current is not None
    note = f"{now.isoformat()}: accepted late as {provider_job_id or '(no id)'} after it was {current.state}"
    current.conflict = clip(f"{current.conflict}; {note}" if current.conflict else note)
    session.add(current)
    SUBMISSION_CONFLICTS.labels(current.connection).inc()
    log.warning("submission %s: %s", current.id, note)


def first_poll_at(sub: PollWindow, now: datetime, rt: Runtime) -> datetime:
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


def close_failed(rt: Runtime, sub_id: str, reason: str) -> None:
    """The call is known not to have created anything: release its recipients for another call."""
    now = rt.clock.now()
    with transaction(rt.sessions) as session:
        if move_submission_if(session, sub_id, _S.IN_FLIGHT, _S.FAILED, now, reason=reason):
            _release_recipients(session, sub_id, now)


def _release_recipients(session: Session, sub_id: str, now: datetime) -> None:
    session.execute(
        update(Recipient)
        .where(col(Recipient.submission_id) == sub_id, col(Recipient.final).is_(False))
        .values(submission_id=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def mark_unknown(rt: Runtime, sub_id: str, reason: str) -> None:
    """The call may have reached the provider: it stays `in_flight` until `resolve` looks it up."""
    with transaction(rt.sessions) as session:
        sub = session.get(Submission, sub_id)
        if sub is not None and sub.state == _S.IN_FLIGHT:
            sub.reason = clip(f"delivery unknown: {reason}")
            session.add(sub)


def reject(rt: Runtime, sub_id: str, call: ProviderCall, reason: str) -> None:
    """The provider refused the call for good: its recipients fail, its jobs carry the reason."""
    _fail_call(rt, sub_id, call, f"refused by the provider: {reason}")


def reject_unsendable(rt: Runtime, sub_id: str, call: ProviderCall, error: str) -> None:
    """The request could not be built or written (nothing left): its recipients fail with a reason."""
    _fail_call(rt, sub_id, call, f"cannot be sent: the request could not be built ({error})")


def _fail_call(rt: Runtime, sub_id: str, call: ProviderCall, reason: str) -> None:
    now = rt.clock.now()
    with transaction(rt.sessions) as session:
        if not move_submission_if(session, sub_id, _S.IN_FLIGHT, _S.FAILED, now, reason=reason):
            return
        conn = getattr(session.get(Submission, sub_id), "connection", "default")  # metric label
        RECIPIENT_OUTCOMES.labels(conn, Outcome.FAILED.value).inc(len(call.recipients))
        session.execute(
            update(Recipient)
            .where(col(Recipient.id).in_([r.id for r in call.recipients]))
            .values(outcome=Outcome.FAILED, final=True, reason=clip(reason), finished_ts=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Job)
            .where(col(Job.id).in_(call.job_ids))
            .values(reason=clip(reason))
            .execution_options(synchronize_session=False)
        )


def isolate(rt: Runtime, job_ids: Sequence[str]) -> None:
    """A shared call was refused: every job in it goes alone next time, so one bad job spoils only itself."""
    with transaction(rt.sessions) as session:
        session.execute(
            update(Job)
            .where(col(Job.id).in_(job_ids), col(Job.state) == JobState.SUBMITTING)
            .values(solo=True)
            .execution_options(synchronize_session=False)
        )
