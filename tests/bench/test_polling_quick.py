"""A small run of bench/polling.py: recipients of a coalesced provider job that waits on a slow recipient
are recorded final within two poll intervals of being final at the sandbox, at a bounded cost in status
calls, all counted in the sandbox's own call records.

The clock is a manual one shared with the in-process sandbox, so every figure is exact, not timed.
Redis: db 10 above `SMSQ_TEST_REDIS_URL` (tests/redis_dbs.py); SQLite files in a temporary directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.polling import READS_BOUND, RECORD_BOUND_INTERVALS, Scenario, render, run

pytestmark = pytest.mark.integration


def test_coalesced_recipients_are_recorded_on_the_normal_poll_schedule_at_a_bounded_cost(tmp_path: Path):
    # Given 100 jobs coalesced 20 to a provider job, every provider job with one recipient that never
    # finishes (the worst case: no job closes at the provider until smsq gives its slow recipient up)
    worst = run(Scenario("coalesced, a slow recipient in every call", 20, 100, 1), tmp_path)
    # Then every job ends finished: the slow recipients closed `unknown` after validity plus grace
    assert worst.finished_jobs == 100 and worst.provider_jobs == 5 and worst.postponed == 0
    assert worst.unknown_recipients == worst.slow_recipients == 5
    # and every other recipient was recorded within two poll intervals of being final at the sandbox,
    # although its provider job stayed open for 90 minutes
    assert len(worst.record_delays_s) == 95
    assert max(worst.delays_in_intervals) <= RECORD_BOUND_INTERVALS
    # at the cost of reading the open jobs at their due polls: a few extra reads each, and still at most
    # 1.2 recipient reads per finished job, counted where they arrive
    assert worst.reads == worst.reads_closing + worst.reads_refresh + worst.reads_extra
    assert worst.reads_closing == 5 and 0 < worst.reads_extra <= 5 * 5
    assert worst.per_job(worst.reads) <= READS_BOUND


def test_single_recipient_jobs_make_no_extra_reads(tmp_path: Path):
    # One recipient per call: an open job is read only by the long-open refresh, never at every due poll
    single = run(Scenario("one recipient per call", 1, 40, 20), tmp_path)
    assert single.finished_jobs == 40 and single.provider_jobs == 40
    assert single.unknown_recipients == single.slow_recipients == 2
    assert single.reads_extra == 0 and single.reads_closing == 40 and single.reads_refresh > 0
    assert max(single.delays_in_intervals) <= RECORD_BOUND_INTERVALS
    section = render([single], 1.0, "python -m bench.polling --quick")
    assert "| one recipient per call | 40 of 40 finished | 1 | 40 |" in section
