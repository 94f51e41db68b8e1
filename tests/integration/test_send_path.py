"""The send path end to end: real Redis, SQLite and PostgreSQL, the sandbox over HTTP, real workers."""

from __future__ import annotations

import collections
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from models.db import transaction
from models.tables import Job, Recipient, Submission
from tests.conftest import settings_env, smsq_settings, wait_until
from worker.errors import InvalidRequest
from worker.producer import enqueue, enqueue_many
from worker.queues import Queue
from worker.rate_limit.limiter import RedisRateLimiter
from worker.status import job_status


def one(dst: str, text: str = "Your code is 1234", **options: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"messages": [{"text": text, "recipients": [{"dst": dst}]}]}
    if options:
        request["options"] = options
    return request


def number(i: int) -> str:
    """A German mobile number that is none of the sandbox's magic numbers (they end in 0001..0007, 0429, 0500)."""
    return f"+49176{i:05d}88"


def sandbox_refs(box) -> collections.Counter[str]:
    """How many times each customerRef reached the sandbox (Retarus REST and HTTP Simple)."""
    refs: collections.Counter[str] = collections.Counter()
    for job in box.state.snapshot_jobs():
        for recipient in job.get("recipients", []):
            ref = recipient.get("customerRef")
            if ref:
                refs[ref] += 1
    return refs


def recipient_ids(rt) -> list[str]:
    with transaction(rt.sessions) as session:
        return list(session.exec(select(Recipient.id)))


def broker_messages(redis_client) -> int:
    return sum(redis_client.llen(queue.value) for queue in Queue)


def test_bad_request_raises_one_error_and_stores_nothing(
    sandbox, database_url, runtime_factory, redis_client
):
    rt = runtime_factory(smsq_settings(sandbox, database_url))
    with pytest.raises(InvalidRequest) as info:
        enqueue(one("+4917612345678", billcode="x" * 71), runtime=rt)
    assert info.value.field == "options.billcode"
    assert "70" in info.value.rule
    with pytest.raises(InvalidRequest) as info:
        enqueue_many([one("+4917612345678"), one("not a number")], runtime=rt)
    assert info.value.field == "requests.1.messages.0.recipients.0.dst"
    with transaction(rt.sessions) as session:
        assert session.exec(select(Job)).all() == []
        assert session.exec(select(Recipient)).all() == []
    assert broker_messages(redis_client) == 0
    assert redis_client.dbsize() == 0


def test_each_job_is_submitted_exactly_once(sandbox, database_url, runtime_factory, redis_client, processes):
    settings = smsq_settings(sandbox, database_url)
    rt = runtime_factory(settings)
    handles = enqueue_many([one(number(i)) for i in range(40)], runtime=rt)
    processes.worker(settings_env(settings), concurrency=2)
    wait_until(
        lambda: all(job_status(h.id, rt)["state"] == "submitted" for h in handles), 60, what="all submitted"
    )
    refs = sandbox_refs(sandbox)
    assert sorted(refs) == sorted(recipient_ids(rt))
    assert set(refs.values()) == {1}
    for handle in handles:
        assert job_status(handle.id, rt)["provider_job_id"].startswith("J.")


def test_a_wake_up_due_in_under_a_second_reaches_the_broker(
    sandbox, sqlite_url, runtime_factory, redis_client
):
    # Given a connection with no drain waiting
    rt = runtime_factory(smsq_settings(sandbox, sqlite_url))
    # When it must drain in 0.3 s (a throttled drain's slot frees, or jobs were queued again for 0.3 s)
    assert rt.wake("default", delay_s=0.3) is True
    # Then the drain message is published: with its countdown on Redis, after one second on RabbitMQ
    # (native delayed delivery counts whole seconds and refused sub-second countdowns outright)
    wait_until(lambda: broker_messages(redis_client) == 1, 10, what="the drain message in the broker")


def test_four_workers_never_exceed_the_provider_limit(
    sandbox_factory, sqlite_url, runtime_factory, processes
):
    # Given a provider allowing 20 calls per 2 s and HTTP Simple (one call per recipient)
    box = sandbox_factory(limit_calls=20, limit_period_s=2.0)
    settings = smsq_settings(box, sqlite_url, "retarus_http", rate_limit_calls=20, rate_limit_period_s=2.0)
    rt = runtime_factory(settings)
    handles = enqueue_many([one(number(i)) for i in range(90)], runtime=rt)
    # When four worker processes send them
    env = settings_env(settings)
    for _ in range(4):
        processes.worker(env)
    # (a claimed job waits `submitting` for its slot, up to a second, before its call is written)
    wait_until(
        lambda: all(job_status(h.id, rt)["state"] not in ("queued", "submitting") for h in handles),
        90,
        what="all sent",
    )
    # Then the provider never said 429 and no 2 s window held more than 20 calls
    calls = [c for c in box.state.calls() if c.api != "control"]
    assert [c for c in calls if c.status_code == 429] == []
    times = sorted(c.real_ts for c in calls)
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t < start + 2.0)
        assert in_window <= 20, f"{in_window} calls in the 2 s window starting at call {i}"
    assert sum(1 for c in calls if c.method == "POST") == 90
    # and no worker logged a number (HTTP Simple carries it in the query; httpx's request line is off)
    logs = "".join(log.read_text() for _, log in processes.started)
    assert "received" in logs and all(number(i)[1:] not in logs for i in range(90))


def test_backlog_of_1000_jobs_is_coalesced_into_a_few_calls(sandbox, sqlite_url, runtime_factory, processes):
    settings = smsq_settings(sandbox, sqlite_url, rate_limit_calls=10, rate_limit_period_s=3.0)
    rt = runtime_factory(settings)
    # Given a saturated limiter: every send slot of the window is taken
    limiter = RedisRateLimiter(rt.redis, "default", 10, 3.0, poll_share=settings.poll_share)
    while limiter.try_acquire("send") == 0.0:
        pass
    handles = enqueue_many([one(number(i), text="Backlog message") for i in range(1000)], runtime=rt)
    processes.worker(settings_env(settings), concurrency=2)
    wait_until(lambda: all(job_status(h.id, rt)["state"] == "submitted" for h in handles[-5:]), 90)
    wait_until(lambda: all(job_status(h.id, rt)["state"] == "submitted" for h in handles), 30)
    posts = [c for c in sandbox.state.calls() if c.method == "POST" and c.path.endswith("/jobs")]
    assert 1 <= len(posts) <= 5, f"{len(posts)} provider calls for 1000 jobs"
    with transaction(rt.sessions) as session:
        rows = session.exec(select(Recipient)).all()
        provider_jobs = dict(session.exec(select(Submission.id, Submission.provider_job_id)).all())
    assert len(rows) == 1000
    assert all((provider_jobs[row.submission_id] or "").startswith("J.") for row in rows if row.submission_id)
    assert all(row.submission_id for row in rows)
    assert set(sandbox_refs(sandbox).values()) == {1}


def test_worker_killed_mid_call_submits_each_recipient_once(
    sandbox, postgres_url, runtime_factory, processes, redis_client
):
    settings = smsq_settings(sandbox, postgres_url, submit_timeout_s=2.0)
    rt = runtime_factory(settings)
    env = settings_env(settings)
    # Given the provider holding every send request
    sandbox.state.hold(path_prefix="/rest/v1/jobs")
    handles = enqueue_many([one(number(i)) for i in range(5)], runtime=rt)
    victim = processes.worker(env)
    wait_until(lambda: any(c.held for c in sandbox.state.calls()), 30, what="a held call")
    # When the worker dies with SIGKILL while its call is in flight, and the provider then proceeds
    processes.kill(victim)
    sandbox.state.release()
    # Then a new worker and the reconcile sweep resolve it without sending anything twice
    processes.worker(env)
    processes.beat(env)
    wait_until(
        lambda: all(job_status(h.id, rt)["state"] == "submitted" for h in handles), 60, what="submitted"
    )
    refs = sandbox_refs(sandbox)
    assert sorted(refs) == sorted(recipient_ids(rt))
    assert set(refs.values()) == {1}
    # The interrupted call was looked up at the provider (found there, or proven absent and resent)
    with transaction(rt.sessions) as session:
        subs = session.exec(select(Submission)).all()
    looked_up = [s for s in subs if s.state == "absent" or "found at the provider" in (s.reason or "")]
    assert len(looked_up) == 1, [(s.state, s.reason) for s in subs]


def test_same_idempotency_key_gives_one_job(sandbox, sqlite_url, runtime_factory, redis_client):
    rt = runtime_factory(smsq_settings(sandbox, sqlite_url))
    first = enqueue(one("+4917612345678"), idempotency_key="order-42", runtime=rt)
    again = enqueue(one("+4917612345679"), idempotency_key="order-42", runtime=rt)
    assert again.id == first.id and not again.created
    with transaction(rt.sessions) as session:
        assert len(session.exec(select(Job)).all()) == 1
    assert redis_client.llen(Queue.SEND.value) == 1


def test_express_job_overtakes_a_backlog_of_normal_ones(sandbox, sqlite_url, runtime_factory, processes):
    settings = smsq_settings(
        sandbox, sqlite_url, "retarus_http", rate_limit_calls=30, rate_limit_period_s=2.0
    )
    rt = runtime_factory(settings)
    normal = enqueue_many([one(number(i)) for i in range(500)], runtime=rt)
    express = enqueue(one("+4917699999999", qos="EXPRESS"), runtime=rt)
    processes.worker(settings_env(settings), concurrency=2)
    wait_until(lambda: job_status(express.id, rt)["state"] == "submitted", 60, what="express submitted")
    sent_normal = sum(1 for h in normal if job_status(h.id, rt)["state"] != "queued")
    assert sent_normal < 100, f"{sent_normal} normal jobs went before the express one"
    posts = [c for c in sandbox.state.calls() if c.method == "POST"]
    express_ref = job_status(express.id, rt)["recipients"][0]
    assert express_ref["provider_job_id"] in [j for c in posts[:60] for j in c.job_ids]


@pytest.mark.parametrize("provider", ["retarus_http", "sendmode"])
def test_local_windows_hold_and_expire(provider, sandbox, sqlite_url, runtime_factory, processes):
    settings = smsq_settings(sandbox, sqlite_url, provider)
    rt = runtime_factory(settings)
    env = settings_env(settings)
    processes.worker(env)
    processes.beat(env)
    # Given a job held by jobPeriod, one inside a blackout, and one whose validity ends inside the blackout
    now = datetime.now(UTC)
    later = now + timedelta(seconds=5)
    blackout = f"{(now - timedelta(minutes=1)).isoformat()}/{(now + timedelta(minutes=50)).isoformat()}"
    held = enqueue(one("+4917611110000", jobPeriod=later.isoformat()), runtime=rt)
    blacked = enqueue(one("+4917611110001", blackoutPeriods=[blackout]), runtime=rt)
    too_late = enqueue(one("+4917611110002", blackoutPeriods=[blackout], validityMin=5), runtime=rt)
    # Then the expired one is never sent, and says why
    assert job_status(too_late.id, rt)["state"] == "expired"
    assert "validity" in job_status(too_late.id, rt)["recipients"][0]["reason"]
    time.sleep(2)
    assert job_status(held.id, rt)["state"] == "scheduled"
    assert not [c for c in sandbox.state.calls() if c.method == "POST"]
    # And the held one goes once its jobPeriod has come, not before
    wait_until(
        lambda: job_status(held.id, rt)["state"] in ("submitted", "finished"), 20, what="held job sent"
    )
    first_post = min(c.real_ts for c in sandbox.state.calls() if c.method == "POST")
    assert first_post >= later.timestamp()
    assert job_status(blacked.id, rt)["state"] == "scheduled"
    assert len([c for c in sandbox.state.calls() if c.method == "POST"]) == 1


def test_applications_without_smsq_enqueue_by_task_name(sandbox, sqlite_url, runtime_factory, processes):
    settings = smsq_settings(sandbox, sqlite_url, enqueue_by_name=True)  # off by default: it carries text
    rt = runtime_factory(settings)
    processes.worker(settings_env(settings))
    request = one(number(77), text="Sent by name")
    rt.celery.send_task(
        "smsq.enqueue",
        kwargs={"request": request, "idempotency_key": "by-name"},
        queue="smsq.send",
        kwargsrepr="{}",
    )
    rt.celery.send_task(
        "smsq.enqueue", kwargs={"request": one("12", text="Bad")}, queue="smsq.send", kwargsrepr="{}"
    )

    def job():
        with transaction(rt.sessions) as session:
            return session.exec(select(Job).where(Job.idempotency_key == "by-name")).first()

    found = wait_until(job, 30, what="the job enqueued by name")
    wait_until(lambda: job_status(found.id, rt)["state"] == "submitted", 30, what="submitted")
    time.sleep(1)
    with transaction(rt.sessions) as session:
        assert len(session.exec(select(Job)).all()) == 1  # the invalid request was refused, not stored


def test_the_by_name_enqueue_is_off_unless_enabled(sandbox, sqlite_url, runtime_factory, redis_client):
    from worker.tasks import enqueue_task

    rt = runtime_factory(smsq_settings(sandbox, sqlite_url))
    assert enqueue_task.apply(kwargs={"request": one(number(99))}).get() == ""
    assert recipient_ids(rt) == []  # nothing stored: the numbers and text it carried went nowhere
