"""How a Retarus recipient progresses over sandbox time: a pure function of its job's windows.

Nothing runs in the background. A recipient's whole `Timeline` is planned when the job is received and
its status at any moment is read off it (`status_at`), so a `ManualClock` or a `SpedUpClock` moves every
job without a thread. Per recipient:

1. OPEN until it is due: the later of receipt and `jobPeriod`.
2. OPEN while the due moment lies inside one of its effective blackout periods (recipient-level periods
   replace the job's; a period shorter than one hour counts as one hour from its start); it moves to the
   period's end, repeatedly while it lands in another period.
3. OPEN for `accept_s`: then the send attempt. An SMS that is sent gets its sentTs then; with a delivery
   notification it is RUNNING for `deliver_s` before its outcome, without one it is DONE SUC_ACC at once
   (RUNNING is a statusRequested=True row). Outcomes reached without sending (INVALID_DST, CON_ERR, ...)
   are final at the attempt, without sentTs. A retrying recipient (...0017) shows OPEN with a status from
   the attempt until its validity ends (scenarios.py).
4. Validity (`validityMin`, 0 meaning 2880) runs from the moment the recipient is due. If it ends before
   the send attempt, the recipient becomes CANCELED with an empty status, without sentTs (never TIMEOUT,
   which means "sent"); if it ends while RUNNING, DONE TIMEOUT "Sent, but validity period exceeded".
   Magic number ...0004 stays RUNNING forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.enums import ProcessStatus
from models.intervals import Interval
from sandbox.scenarios import EXPIRED_BEFORE_SENDING, TIMEOUT, Scenario

#: Retarus rule: blackout periods under one hour are expanded to one hour from their start.
MIN_BLACKOUT = timedelta(hours=1)
#: validityMin 0 means the provider default.
DEFAULT_VALIDITY_MIN = 2880
#: ASSUMPTION (PROVIDERS.md does not say): validity counts from when the recipient is due, i.e. the later
#: of receipt and jobPeriod, so a job scheduled days ahead is not expired on arrival. Only blackout periods
#: can therefore keep a recipient unsent until its validity runs out. Change `validity_start` to alter it.


def validity_start(receipt: datetime, job_period: datetime | None) -> datetime:
    return receipt if job_period is None else max(receipt, job_period)


@dataclass(frozen=True)
class Timing:
    """Sandbox-clock seconds a due recipient spends OPEN (`accept_s`) and then RUNNING (`deliver_s`)."""

    accept_s: float = 2.0
    deliver_s: float = 3.0


@dataclass(frozen=True)
class Timeline:
    """When a recipient is sent and finished (None: never), and the state it finishes in."""

    due: datetime
    sendable: datetime
    sent: datetime | None
    finished: datetime | None
    end: Scenario
    #: The send attempt, and the status shown while OPEN from then on (None: an empty status).
    attempt: datetime | None = None
    retry_status: str | None = None


@dataclass(frozen=True)
class RecipientStatus:
    process_status: ProcessStatus
    status: str | None
    reason: str | None
    sent_ts: datetime | None
    finished_ts: datetime | None

    @property
    def final(self) -> bool:
        return self.finished_ts is not None


def effective_blackouts(
    job_periods: Sequence[Interval], recipient_periods: Sequence[Interval] | None
) -> list[Interval]:
    """Recipient-level periods replace the job's when given; each lasts at least `MIN_BLACKOUT`."""
    periods = job_periods if recipient_periods is None else recipient_periods
    return [Interval(p.start, max(p.end, p.start + MIN_BLACKOUT), p.text) for p in periods]


def first_free_moment(when: datetime, periods: Sequence[Interval]) -> datetime:
    """`when`, or the end of the blackout period it falls in (repeated while that end is blacked out)."""
    moved = True
    while moved:
        moved = False
        for period in periods:
            if period.contains(when):
                when = period.end
                moved = True
    return when


def plan(
    *,
    receipt: datetime,
    job_period: datetime | None,
    blackouts: Sequence[Interval],
    validity_min: int,
    timing: Timing,
    outcome: Scenario,
) -> Timeline:
    """The whole future of one recipient, from its windows and the outcome its number asks for
    (`outcome_for` has already applied the delivery-notification rule)."""
    due = validity_start(receipt, job_period)
    sendable = first_free_moment(due, blackouts)
    attempt = sendable + timedelta(seconds=timing.accept_s)
    validity_end = due + timedelta(minutes=validity_min or DEFAULT_VALIDITY_MIN)
    if validity_end <= attempt:
        return Timeline(due, sendable, None, validity_end, EXPIRED_BEFORE_SENDING)
    if outcome.retry_status is not None:
        return Timeline(due, sendable, None, validity_end, outcome, attempt, outcome.retry_status)
    if not outcome.sent:
        return Timeline(due, sendable, None, attempt, outcome, attempt)
    if outcome.notification is not True:  # sent without a delivery notification: final at once
        return Timeline(due, sendable, attempt, attempt, outcome, attempt)
    if not outcome.final:
        return Timeline(due, sendable, attempt, None, outcome, attempt)
    done = attempt + timedelta(seconds=timing.deliver_s)
    if validity_end < done:
        return Timeline(due, sendable, attempt, validity_end, TIMEOUT, attempt)
    return Timeline(due, sendable, attempt, done, outcome, attempt)


def status_at(timeline: Timeline, now: datetime) -> RecipientStatus:
    """The recipient's report at `now`."""
    if timeline.finished is not None and now >= timeline.finished:
        end = timeline.end
        return RecipientStatus(
            end.process_status, end.status or None, end.reason, timeline.sent, timeline.finished
        )
    if timeline.sent is not None and now >= timeline.sent:
        reason = None if timeline.end.final else timeline.end.reason
        return RecipientStatus(ProcessStatus.RUNNING, None, reason, timeline.sent, None)
    if timeline.retry_status is not None and timeline.attempt is not None and now >= timeline.attempt:
        return RecipientStatus(ProcessStatus.OPEN, timeline.retry_status, "Retrying", None, None)
    return RecipientStatus(ProcessStatus.OPEN, None, None, None, None)
