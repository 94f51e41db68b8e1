"""What one provider call costs the database: a test pins the statements and transactions of a round.

A round of the send path is the claim's transaction (claim, read the claimed rows, commit the calls'
in-flight evidence), the calls, and one transaction that records the answers and settles the batch
(Retarus REST; HTTP Simple, which cannot look a call up, commits each next call's evidence with the
previous call's acceptance: one transaction per call, tests/integration/test_rounds.py).
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


def test_small_calls_share_one_claim_and_one_recording_transaction(
    sandbox, sqlite_url, runtime_factory, redis_client
):
    # One recipient per call (SMSQ_BATCH_MAX_RECIPIENTS=1) on Retarus REST: a round claims several calls'
    # worth of jobs, commits every call's evidence with the claim, and records all answers at once.
    settings = smsq_settings(sandbox, sqlite_url, batch_max_recipients=1, round_max_calls=8)
    rt = runtime_factory(settings, clock=ManualClock())
    rt.wake = lambda *args, **kwargs: False
    _ = rt.sessions
    rt.limiter("default").peek()
    counter = StatementCounter(rt.engine)
    handles = enqueue_many([one(number(i), text="Same") for i in range(20)], runtime=rt)
    counter.reset()
    result = submit_next("default", rt)
    assert result.calls == 8  # round_max_calls; the sandbox's limit leaves far more than 80 send slots
    # the claim's transaction, then one that records the 8 acceptances and moves the claim
    assert counter.commits == 2
    # claim: head, followers, UPDATE, jobs, recipients, suppressions, INSERT (8 submissions), UPDATE (each
    # recipient to its call's submission) | record: UPDATE (8 submissions), UPDATE (the whole claim)
    assert counter.statements == [
        "SELECT", "SELECT", "UPDATE", "SELECT", "SELECT", "SELECT", "INSERT", "UPDATE",
        "UPDATE", "UPDATE",
    ]  # fmt: skip
    sent = [job_status(h.id, rt) for h in handles]
    assert [s["state"] for s in sent] == ["submitted"] * 8 + ["queued"] * 12  # the oldest first
    provider_ids = [s["recipients"][0]["provider_job_id"] for s in sent[:8]]
    assert len(set(provider_ids)) == 8  # one provider job per recipient
    sends = [c for c in sandbox.state.calls() if c.method == "POST" and c.path.endswith("/jobs")]
    assert len(sends) == 8


def test_a_round_is_small_when_the_send_share_is(sandbox, sqlite_url, runtime_factory, redis_client):
    # 30 calls / window with a poll share of 0.1: 27 send slots, so a round carries at most 2 calls.
    settings = smsq_settings(sandbox, sqlite_url, batch_max_recipients=1, rate_limit_calls=30)
    rt = runtime_factory(settings, clock=ManualClock())
    rt.wake = lambda *args, **kwargs: False
    enqueue_many([one(number(i), text="Same") for i in range(5)], runtime=rt)
    assert rt.limiter("default").slots("send") // 10 == 2
    assert submit_next("default", rt).calls == 2
