"""A poll cycle takes what the connection's budget can use before the next cycle, not a fixed 500.

A closed provider job costs a call (its recipient reports) and an open one none, so a cycle takes twice
the calls the whole budget allows between two cycles, at least 20 and at most 500; the rest stay due, in
order, for the next cycle (issue 13: the due-submissions read stays the size of what a cycle can use).
"""

from __future__ import annotations

from models.clock import ManualClock
from scheduler.poll import POLL_BATCH, POLL_BATCH_MIN, poll_batch, poll_connection
from tests.conftest import smsq_settings
from tests.integration.test_send_path import number, one
from worker.producer import enqueue_many
from worker.status import job_status
from worker.submit.dispatch import submit_next


def test_the_batch_follows_the_budget_between_two_cycles():
    assert poll_batch(100, 60.0, 10.0) == 34  # the defaults: 16.7 calls per cycle, twice that
    assert poll_batch(100, 60.0, 1.0) == POLL_BATCH_MIN
    assert poll_batch(1_000_000, 60.0, 10.0) == POLL_BATCH
    assert poll_batch(600, 60.0, 2.0) == 40


def test_a_large_due_set_is_worked_through_in_order_over_consecutive_cycles(
    sandbox_factory, sqlite_url, runtime_factory, redis_client
):
    clock = ManualClock()
    box = sandbox_factory(clock=clock)
    # 10,000 calls / 60 s with a cycle every 0.05 s: 8.3 calls per cycle, so the floor of 20 applies
    settings = smsq_settings(
        box, sqlite_url, batch_max_recipients=1, rate_limit_calls=10_000, poll_interval_s=0.05,
        poll_max_interval_s=0.05,
    )  # fmt: skip
    rt = runtime_factory(settings, clock=clock)
    rt.wake = lambda *args, **kwargs: False
    handles = enqueue_many([one(number(i)) for i in range(45)], runtime=rt)
    while submit_next("default", rt).kind == "sent":
        clock.advance(0.001)  # one call after the other: the first sent is the first due
    assert {job_status(h.id, rt)["state"] for h in handles} == {"submitted"}
    clock.advance(600)  # every provider job is final at the sandbox

    finished = []
    for _ in range(3):
        report = poll_connection(rt, "default")
        finished.append([h.id for h in handles if job_status(h.id, rt)["state"] == "finished"])
        assert not report.postponed

    assert [len(f) for f in finished] == [20, 40, 45]
    assert finished[0] == [h.id for h in handles[:20]]  # earliest due first
    assert finished[1] == [h.id for h in handles[:40]]
