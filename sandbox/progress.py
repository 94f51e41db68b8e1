"""How a Retarus recipient progresses over sandbox time: a pure function of its job's windows.

Nothing runs in the background. A recipient's whole `Timeline` is planned when the job is received and
its status at any moment is read off it (`status_at`), so a `ManualClock` or a `SpedUpClock` moves every
job without a thread. Per recipient:

1. OPEN until it is due: the later of receipt and `jobPeriod`.
2. OPEN while the due moment lies inside one of its effective blackout periods (recipient-level periods
   replace the job's; a period shorter than one hour counts as one hour from its start); it moves to the
   period's end, repeatedly while it lands in another period.
3. OPEN for `accept_s`, then RUNNING (sentTs) for `deliver_s`, then its outcome (scenarios.py).
4. Validity (`validityMin`, 0 meaning 2880) runs from the moment the recipient is due. If it ends before
   the recipient was sent, the recipient becomes DONE TIMEOUT without sentTs; if it ends while RUNNING, DONE
   TIMEOUT "Sent, but validity period exceeded". Magic number ...0004 stays RUNNING forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.enums import ProcessStatus
from models.intervals import Interval
from sandbox.scenarios import TIMEOUT, TIMEOUT_NOT_SENT, Scenario

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
    """The whole future of one recipient, from its windows and the outcome its number asks for."""
    due = validity_start(receipt, job_period)
    sendable = first_free_moment(due, blackouts)
    sent = sendable + timedelta(seconds=timing.accept_s)
    done = sent + timedelta(seconds=timing.deliver_s)
    validity_end = due + timedelta(minutes=validity_min or DEFAULT_VALIDITY_MIN)
    if validity_end <= sent:
        return Timeline(due, sendable, None, validity_end, TIMEOUT_NOT_SENT)
    if not outcome.final:
        return Timeline(due, sendable, sent, None, outcome)
    if validity_end < done:
        return Timeline(due, sendable, sent, validity_end, TIMEOUT)
    return Timeline(due, sendable, sent, done, outcome)


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
    return RecipientStatus(ProcessStatus.OPEN, None, None, None, None)
