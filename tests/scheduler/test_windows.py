"""Tests of models.windows: jobPeriod, validity and blackout arithmetic (examples and properties)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.intervals import Interval, parse_interval
from models.windows import (
    DEFAULT_VALIDITY_MIN,
    MIN_BLACKOUT,
    SendDecision,
    earliest_send,
    next_allowed,
    next_poll_at,
    normalise_blackouts,
    send_decision,
    validity_deadline,
)

T0 = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
CET = timezone(timedelta(hours=1))


def at(hh: int, mm: int = 0, *, day: int = 1) -> datetime:
    return datetime(2030, 1, day, hh, mm, tzinfo=UTC)


def iv(start: datetime, end: datetime) -> Interval:
    return Interval(start, end)


# --- strategies --------------------------------------------------------------------------------------

offsets = st.sampled_from(
    [timedelta(0), timedelta(hours=1), timedelta(hours=-5), timedelta(hours=5, minutes=30)]
)


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    """Aware instants within three days after T0, at minute resolution, in a random UTC offset."""
    minutes = draw(st.integers(min_value=0, max_value=3 * 24 * 60))
    seconds = draw(st.sampled_from([0, 0, 30, 59]))
    return (T0 + timedelta(minutes=minutes, seconds=seconds)).astimezone(timezone(draw(offsets)))


@st.composite
def intervals(draw: st.DrawFn) -> Interval:
    start = draw(instants())
    length = draw(st.integers(min_value=1, max_value=6 * 60))
    return Interval(start, start + timedelta(minutes=length))


blackout_lists = st.lists(intervals(), max_size=6)


def covered(periods: list[Interval], when: datetime) -> bool:
    return any(period.contains(when) for period in periods)


# --- normalise_blackouts -----------------------------------------------------------------------------


def test_short_period_is_extended_to_one_hour_from_its_start() -> None:
    assert normalise_blackouts([iv(at(17, 10), at(17, 20))]) == [iv(at(17, 10), at(18, 10))]


def test_overlapping_and_touching_periods_are_merged_and_sorted() -> None:
    periods = [iv(at(20), at(22)), iv(at(17, 10), at(17, 20)), iv(at(18, 10), at(19, 30)), iv(at(21), at(23))]
    # 17:10-17:20 becomes 17:10-18:10, which touches 18:10-19:30.
    assert normalise_blackouts(periods) == [iv(at(17, 10), at(19, 30)), iv(at(20), at(23))]


def test_periods_in_other_offsets_are_returned_in_utc() -> None:
    (period,) = normalise_blackouts([parse_interval("2030-01-01T18:00+01:00/2030-01-02T07:00+01:00")])
    assert period.start == at(17) and period.start.utcoffset() == timedelta(0)
    assert period.end == at(6, day=2)


def test_naive_period_end_is_refused_by_the_interval_itself() -> None:
    with pytest.raises(ValueError):
        Interval(at(10), datetime(2030, 1, 1, 12))


@given(blackout_lists)
def test_normalisation_is_idempotent(periods: list[Interval]) -> None:
    once = normalise_blackouts(periods)
    assert normalise_blackouts(once) == once


@given(blackout_lists)
def test_normalised_periods_are_sorted_disjoint_long_enough_and_cover_the_input(
    periods: list[Interval],
) -> None:
    result = normalise_blackouts(periods)
    for earlier, later in zip(result, result[1:], strict=False):
        assert earlier.end < later.start
    for period in result:
        assert period.end - period.start >= MIN_BLACKOUT
        assert period.start.utcoffset() == timedelta(0)
    for original in periods:
        end = max(original.end, original.start + MIN_BLACKOUT)
        assert any(p.start <= original.start and end <= p.end for p in result)


# --- next_allowed / earliest_send --------------------------------------------------------------------


def test_time_inside_a_period_moves_to_its_end() -> None:
    assert next_allowed(at(18), [iv(at(17), at(19))]) == at(19)


def test_period_end_itself_is_allowed() -> None:
    assert next_allowed(at(19), [iv(at(17), at(19))]) == at(19)


def test_chained_periods_move_to_the_end_of_the_last_one() -> None:
    # 17:10-17:20 counts as 17:10-18:10, which touches the next period: the send moves to 20:00.
    periods = [iv(at(18, 10), at(20)), iv(at(17, 10), at(17, 20))]
    assert next_allowed(at(17, 15), periods) == at(20)


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2030, 1, 1, 10)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_allowed(naive, [])
    with pytest.raises(ValueError, match="timezone-aware"):
        earliest_send(T0, job_period=naive, blackouts=[])
    with pytest.raises(ValueError, match="timezone-aware"):
        validity_deadline(naive, 5)
    with pytest.raises(ValueError, match="timezone-aware"):
        send_decision(T0, created_at=naive, job_period=None, validity_min=5, blackouts=[])
    with pytest.raises(ValueError, match="timezone-aware"):
        next_poll_at(T0, attempt=0, job_period=None, blackouts=[], not_after=naive)


@given(instants(), blackout_lists)
def test_next_allowed_is_never_inside_a_period_nor_earlier(when: datetime, periods: list[Interval]) -> None:
    result = next_allowed(when, periods)
    assert result >= when
    assert not covered(periods, result)
    assert not covered(normalise_blackouts(periods), result)
    if not covered(normalise_blackouts(periods), when):
        assert result == when
    assert result.utcoffset() == timedelta(0)


@given(instants(), st.none() | instants(), blackout_lists)
def test_earliest_send_is_after_now_and_job_period(
    now: datetime, job_period: datetime | None, periods: list[Interval]
) -> None:
    result = earliest_send(now, job_period=job_period, blackouts=periods)
    assert result >= now
    if job_period is not None:
        assert result >= job_period
    assert not covered(periods, result)


def test_earliest_send_waits_for_job_period_then_skips_blackout() -> None:
    result = earliest_send(at(9), job_period=at(17, 30), blackouts=[iv(at(17), at(18))])
    assert result == at(18)


# --- validity ----------------------------------------------------------------------------------------


def test_validity_zero_or_none_means_the_provider_default() -> None:
    assert DEFAULT_VALIDITY_MIN == 2880
    assert validity_deadline(T0, 0) == T0 + timedelta(minutes=2880)
    assert validity_deadline(T0, None) == T0 + timedelta(minutes=2880)
    assert validity_deadline(T0, 5) == at(10, 5)


def test_negative_validity_is_refused() -> None:
    with pytest.raises(ValueError, match="validity_min"):
        validity_deadline(T0, -1)


# --- send_decision -----------------------------------------------------------------------------------


def test_due_job_is_sent_now() -> None:
    decision = send_decision(T0, created_at=T0, job_period=None, validity_min=5, blackouts=[])
    assert decision == SendDecision("send", T0, "due")


def test_job_before_its_job_period_is_held_until_it() -> None:
    decision = send_decision(T0, created_at=T0, job_period=at(12), validity_min=5, blackouts=[])
    assert decision.action == "hold" and decision.at == at(12)
    assert "jobPeriod" in decision.reason


def test_job_in_a_blackout_is_held_until_its_end() -> None:
    decision = send_decision(
        at(17, 30), created_at=at(17, 30), job_period=None, validity_min=120, blackouts=[iv(at(17), at(18))]
    )
    assert decision.action == "hold" and decision.at == at(18)
    assert "blackout" in decision.reason


def test_validity_shorter_than_the_blackout_expires_with_a_reason() -> None:
    decision = send_decision(
        T0, created_at=T0, job_period=None, validity_min=5, blackouts=[iv(at(10), at(11))]
    )
    assert decision.action == "expire" and decision.at is None
    assert decision.reason == (
        "validity of 5 min ended at 2030-01-01T10:05:00+00:00 before the first allowed send time "
        "2030-01-01T11:00:00+00:00"
    )


def test_validity_counts_from_job_period_not_from_creation() -> None:
    # Created at 10:00, due at 12:00, 5 min validity: sending at 12:03 is still in time.
    decision = send_decision(at(12, 3), created_at=T0, job_period=at(12), validity_min=5, blackouts=[])
    assert decision.action == "send"
    late = send_decision(at(12, 5), created_at=T0, job_period=at(12), validity_min=5, blackouts=[])
    assert late.action == "expire"


def test_job_found_after_its_deadline_expires() -> None:
    decision = send_decision(at(10, 6), created_at=T0, job_period=None, validity_min=5, blackouts=[])
    assert decision.action == "expire"


@settings(max_examples=300)
@given(
    instants(),
    instants(),
    st.none() | instants(),
    st.sampled_from([None, 0, 5, 30, 90, 600, 2880]),
    blackout_lists,
)
def test_send_decision_never_sends_in_a_blackout_before_job_period_or_after_deadline(
    now: datetime,
    created: datetime,
    job_period: datetime | None,
    validity: int | None,
    periods: list[Interval],
) -> None:
    decision = send_decision(
        now, created_at=created, job_period=job_period, validity_min=validity, blackouts=periods
    )
    start = created if job_period is None else max(created, job_period)
    deadline = validity_deadline(start, validity)
    if decision.action == "send":
        assert decision.at == now
        assert not covered(periods, now)
        assert job_period is None or now >= job_period
        assert now < deadline
    elif decision.action == "hold":
        assert decision.at is not None and now < decision.at < deadline
        assert not covered(periods, decision.at)
        # Holding until `at` and deciding again then gives "send".
        again = send_decision(
            decision.at, created_at=created, job_period=job_period, validity_min=validity, blackouts=periods
        )
        assert again.action == "send"
    else:
        assert decision.action == "expire" and decision.at is None
        assert earliest_send(now, job_period=job_period, blackouts=periods) >= deadline


@given(instants(), instants(), st.none() | instants(), blackout_lists, offsets)
def test_same_instants_in_other_offsets_give_the_same_decision(
    now: datetime, created: datetime, job_period: datetime | None, periods: list[Interval], offset: timedelta
) -> None:
    tz = timezone(offset)
    shifted = [Interval(p.start.astimezone(tz), p.end.astimezone(tz)) for p in periods]
    a = send_decision(now, created_at=created, job_period=job_period, validity_min=60, blackouts=periods)
    b = send_decision(
        now.astimezone(tz),
        created_at=created.astimezone(tz),
        job_period=None if job_period is None else job_period.astimezone(tz),
        validity_min=60,
        blackouts=shifted,
    )
    assert a == b
    if a.at is not None:
        assert a.at.utcoffset() == timedelta(0)


# --- next_poll_at ------------------------------------------------------------------------------------


def test_poll_backoff_doubles_and_is_capped() -> None:
    delays = [next_poll_at(T0, attempt=n, job_period=None, blackouts=[], not_after=None) for n in range(7)]
    assert [d - T0 if d else None for d in delays] == [
        timedelta(seconds=s) for s in (10, 20, 40, 80, 160, 300, 300)
    ]


def test_poll_waits_for_job_period_and_leaves_blackouts() -> None:
    assert next_poll_at(T0, attempt=0, job_period=at(12), blackouts=[], not_after=None) == at(12)
    assert next_poll_at(
        T0, attempt=0, job_period=None, blackouts=[iv(at(10), at(10, 30))], not_after=None
    ) == at(11)


def test_poll_past_not_after_returns_none() -> None:
    assert next_poll_at(T0, attempt=0, job_period=None, blackouts=[], not_after=at(10, 0)) is None
    assert next_poll_at(
        T0, attempt=0, job_period=None, blackouts=[], not_after=T0 + timedelta(seconds=10)
    ) == T0 + timedelta(seconds=10)


def test_huge_attempt_does_not_overflow_and_negative_is_refused() -> None:
    assert next_poll_at(T0, attempt=10_000, job_period=None, blackouts=[], not_after=None) == T0 + timedelta(
        seconds=300
    )
    with pytest.raises(ValueError, match="attempt"):
        next_poll_at(T0, attempt=-1, job_period=None, blackouts=[], not_after=None)


@given(
    instants(),
    st.none() | instants(),
    blackout_lists,
    st.none() | instants(),
    st.floats(min_value=0.5, max_value=60),
    st.floats(min_value=1, max_value=3600),
)
def test_next_poll_is_monotone_outside_blackouts_after_job_period_and_bounded(
    now: datetime,
    job_period: datetime | None,
    periods: list[Interval],
    not_after: datetime | None,
    base_s: float,
    max_s: float,
) -> None:
    previous: datetime | None = None
    for attempt in range(12):
        when = next_poll_at(
            now,
            attempt=attempt,
            base_s=base_s,
            max_s=max_s,
            job_period=job_period,
            blackouts=periods,
            not_after=not_after,
        )
        if when is None:
            # Once past not_after, every later attempt is past it too.
            assert not_after is not None
            for later in range(attempt, 14):
                assert (
                    next_poll_at(
                        now,
                        attempt=later,
                        base_s=base_s,
                        max_s=max_s,
                        job_period=job_period,
                        blackouts=periods,
                        not_after=not_after,
                    )
                    is None
                )
            break
        assert when > now
        assert job_period is None or when >= job_period
        assert not covered(periods, when)
        assert not_after is None or when <= not_after
        if previous is not None:
            assert when >= previous
            uncapped = base_s * 2**attempt <= max_s
            if uncapped and job_period is None and not periods:
                assert when > previous
        previous = when
