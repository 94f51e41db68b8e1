"""What one provider call costs the database: a test pins the statements and transactions of a round.

A round of the send path is the claim's transaction (claim, read the claimed rows, commit the call's
in-flight evidence), the call, and one transaction that records the answer and settles the batch.
"""

from __future__ import annotations

from bench.database import StatementCounter
from models.clock import ManualClock
from tests.conftest import smsq_settings
from tests.integration.test_send_path import number, one
from worker.producer import enqueue, enqueue_many
from worker.status import job_status
from worker.submit.dispatch import submit_next


def test_one_provider_call_costs_two_transactions_and_a_handful_of_statements(
    sandbox, sqlite_url, runtime_factory, redis_client
):
    rt = runtime_factory(smsq_settings(sandbox, sqlite_url), clock=ManualClock())
    rt.wake = lambda *args, **kwargs: False
    _ = rt.sessions  # the schema check of the first use is not part of a round
    rt.limiter("default").peek()  # nor the limiter's first look at its state in this (flushed) Redis
    counter = StatementCounter(rt.engine)
    # A coalesced batch of 50 single-recipient jobs: one call
    handles = enqueue_many([one(number(i), text="Same") for i in range(50)], runtime=rt)
    counter.reset()
    result = submit_next("default", rt)
    assert result.calls == 1
    assert counter.commits == 2
    # claim: head, followers, UPDATE; read jobs, recipients, suppressions; INSERT submission, UPDATE
    # recipients | record: UPDATE submission, UPDATE jobs (the whole claim); the recipients are not
    # rewritten at acceptance (their provider job id is their submission's)
    assert counter.statements == [
        "SELECT", "SELECT", "UPDATE", "SELECT", "SELECT", "SELECT", "INSERT", "UPDATE",
        "UPDATE", "UPDATE",
    ]  # fmt: skip
    statuses = [job_status(h.id, rt) for h in handles]
    assert {s["state"] for s in statuses} == {"submitted"}
    assert len({s["recipients"][0]["provider_job_id"] for s in statuses}) == 1  # the one call's job
    # A job alone (no backlog) costs the same
    alone = enqueue(one(number(99)), runtime=rt)
    counter.reset()
    assert submit_next("default", rt).calls == 1
    assert counter.commits == 2 and len(counter.statements) == 10
    assert job_status(alone.id, rt)["state"] == "submitted"
