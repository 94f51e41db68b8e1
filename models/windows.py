"""The time-window arithmetic of a job: jobPeriod, validityMin and blackout periods.

One pure module (no I/O, no clock of its own: "now" is always an argument) used both when a job is
submitted (send, hold or expire it) and when it is polled (when to look again). The rules are the
Retarus contract's, applied to every provider (DESIGN.md "Time windows"):

- jobPeriod is the earliest time to process a job.
- A send time inside a blackout period moves to the period's end; a period shorter than one hour
  counts as one hour from its start (17:10-17:20 becomes 17:10-18:10). Touching or overlapping periods
  act as one, so the move lands outside every period.
- An SMS not sent within validityMin minutes of the start of processing is not sent at all.

Every function refuses naive datetimes with ValueError and returns aware datetimes in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from models.intervals import Interval

__all__ = [
    "DEFAULT_VALIDITY_MIN",
    "MIN_BLACKOUT",
    "SendAction",
    "SendDecision",
    "earliest_send",
    "next_allowed",
    "next_poll_at",
    "normalise_blackouts",
    "send_decision",
    "validity_deadline",
]

#: Shortest blackout period; shorter ones are extended to this length from their start (Retarus rule).
MIN_BLACKOUT = timedelta(hours=1)

#: Validity in minutes used when validityMin is 0 or None ("provider default").
#: ASSUMPTION: the provider default is not documented; we take 2880 minutes (48 h), the contract's
#: maximum and the value Retarus reports in its own examples, so a job is never dropped earlier than
#: the provider itself would drop it.
DEFAULT_VALIDITY_MIN = 2880

#: The largest exponent used for poll back-off; beyond it every delay is capped anyway, and
#: 2.0 ** attempt for huge attempts would overflow a float.
_MAX_BACKOFF_EXPONENT = 64

SendAction = Literal["send", "hold", "expire"]


@dataclass(frozen=True)
class SendDecision:
    """What to do with a job now: send it, hold it until `at`, or expire it (then `at` is None)."""

    action: SendAction
    at: datetime | None
    reason: str


def _utc(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def normalise_blackouts(periods: Iterable[Interval]) -> list[Interval]:
    """Extend periods under one hour to one hour, then sort and merge overlapping or touching ones.

    The result is sorted, pairwise disjoint with gaps between neighbours, in UTC, and covers every
    input period.
    """
    extended: list[tuple[datetime, datetime]] = []
    for period in periods:
        start = _utc("blackout start", period.start)
        end = _utc("blackout end", period.end)
        extended.append((start, max(end, start + MIN_BLACKOUT)))
    extended.sort()
    merged: list[tuple[datetime, datetime]] = []
    for start, end in extended:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return [Interval(start, end) for start, end in merged]


def next_allowed(when: datetime, blackouts: Iterable[Interval]) -> datetime:
    """`when` if it is outside every blackout period, else the end of the (merged) period holding it."""
    result = _utc("when", when)
    # Normalised periods are sorted and separated by gaps, so one pass moves past chained periods.
    for period in normalise_blackouts(blackouts):
        if period.contains(result):
            result = period.end
    return result


def earliest_send(now: datetime, *, job_period: datetime | None, blackouts: Iterable[Interval]) -> datetime:
    """The first instant at or after both `now` and `job_period` that is outside every blackout."""
    start = _utc("now", now)
    if job_period is not None:
        start = max(start, _utc("job_period", job_period))
    return next_allowed(start, blackouts)


def validity_deadline(start: datetime, validity_min: int | None) -> datetime:
    """The instant from which the SMS must no longer be sent: `start` + validity.

    `start` is when processing may begin (max(created, jobPeriod)); a validity of 0 or None means
    `DEFAULT_VALIDITY_MIN`.
    """
    if validity_min is not None and validity_min < 0:
        raise ValueError(f"validity_min must be >= 0, got {validity_min}")
    minutes = validity_min or DEFAULT_VALIDITY_MIN
    return _utc("start", start) + timedelta(minutes=minutes)


def send_decision(
    now: datetime,
    *,
    created_at: datetime,
    job_period: datetime | None,
    validity_min: int | None,
    blackouts: Iterable[Interval],
) -> SendDecision:
    """Decide whether a job is sent now, held until a later instant, or expired for good."""
    now_utc = _utc("now", now)
    created_utc = _utc("created_at", created_at)
    job_period_utc = None if job_period is None else _utc("job_period", job_period)
    periods = normalise_blackouts(blackouts)
    start = created_utc if job_period_utc is None else max(created_utc, job_period_utc)
    deadline = validity_deadline(start, validity_min)
    send_at = earliest_send(now_utc, job_period=job_period_utc, blackouts=periods)
    if send_at >= deadline:
        minutes = validity_min or DEFAULT_VALIDITY_MIN
        return SendDecision(
            "expire",
            None,
            f"validity of {minutes} min ended at {deadline.isoformat()} before the first allowed send "
            f"time {send_at.isoformat()}",
        )
    if send_at > now_utc:
        if job_period_utc is not None and send_at == job_period_utc:
            why = "jobPeriod"
        else:
            why = "the end of a blackout period"
        return SendDecision("hold", send_at, f"held until {why} at {send_at.isoformat()}")
    return SendDecision("send", now_utc, "due")


def next_poll_at(
    now: datetime,
    *,
    attempt: int,
    base_s: float = 10.0,
    max_s: float = 300.0,
    job_period: datetime | None,
    blackouts: Iterable[Interval],
    not_after: datetime | None,
) -> datetime | None:
    """When to poll a job next, or None once that would be after `not_after`.

    The delay is `base_s * 2**attempt` capped at `max_s`; the result is never before `job_period`
    and never inside a blackout period (it moves to the period's end). `not_after` is the end of the
    validity window plus grace: past it the caller reconciles the job once and stops polling.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if base_s <= 0 or max_s <= 0:
        raise ValueError(f"base_s and max_s must be > 0, got {base_s} and {max_s}")
    now_utc = _utc("now", now)
    not_after_utc = None if not_after is None else _utc("not_after", not_after)
    delay_s = min(base_s * 2.0 ** min(attempt, _MAX_BACKOFF_EXPONENT), max_s)
    when = earliest_send(now_utc + timedelta(seconds=delay_s), job_period=job_period, blackouts=blackouts)
    if not_after_utc is not None and when > not_after_utc:
        return None
    return when


def poll_time(
    now: datetime,
    *,
    attempt: int,
    base_s: float = 10.0,
    max_s: float = 300.0,
    job_period: datetime | None,
    blackouts: Iterable[Interval],
    not_after: datetime | None,
) -> datetime:
    """When to look at a job next: `next_poll_at`, or once it returns None, the last look.

    The last look is at `not_after` (validity plus grace; at once if that has passed), moved out of
    any blackout period, so even the final reconciliation never polls inside a blackout.
    """
    periods = normalise_blackouts(blackouts)
    nxt = next_poll_at(
        now,
        attempt=attempt,
        base_s=base_s,
        max_s=max_s,
        job_period=job_period,
        blackouts=periods,
        not_after=not_after,
    )
    if nxt is not None:
        return nxt
    last = _utc("now", now) if not_after is None else max(_utc("now", now), _utc("not_after", not_after))
    return next_allowed(last, periods)


def may_poll(now: datetime, *, job_period: datetime | None, blackouts: Iterable[Interval]) -> bool:
    """Whether a job may be polled at `now`: not before its jobPeriod, not inside a blackout period."""
    now_utc = _utc("now", now)
    if job_period is not None and now_utc < _utc("job_period", job_period):
        return False
    return next_allowed(now_utc, normalise_blackouts(blackouts)) == now_utc
