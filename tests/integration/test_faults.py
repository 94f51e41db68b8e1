"""Faults part-way: the provider failing, dropping or garbling answers, the broker down at enqueue.

Each case checks the two promises: nothing is lost (every recipient ends up at the provider or with a
recorded reason) and nothing is sent twice (the sandbox's jobs are the witness).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlmodel import select

from models.clock import ManualClock
from models.db import transaction
from models.tables import Job, Submission
from scheduler.sweeps import reconcile, release
from tests.conftest import smsq_settings
from tests.integration.test_send_path import number, one, recipient_ids, sandbox_refs
from worker.producer import enqueue, enqueue_many
from worker.queues import Queue
from worker.status import job_status
from worker.submit.dispatch import submit_next
from worker.submit.resolve import resolve_submission


def _setup(sandbox_factory, sqlite_url, runtime_factory, provider="retarus", **overrides):
    clock = ManualClock()
    box = sandbox_factory(clock=clock)
    rt = runtime_factory(smsq_settings(box, sqlite_url, provider, **overrides), clock=clock)
    published: list[tuple[str, dict[str, Any]]] = []

    def wake(connection: str, **kw: Any) -> bool:
        published.append((connection, kw))
        return True

    rt.wake = wake
    return clock, box, rt, published


def _drain(rt, clock, rounds: int = 20) -> None:
    """Run submission rounds and sweeps as the worker and beat would, advancing the clock past backoffs."""
    for _ in range(rounds):
        result = submit_next("default", rt)
        for sub_id in result.resolve:
            resolve_submission(sub_id, rt)
        if result.kind == "idle":
            clock.advance(10)
            release(rt)
            reconcile(rt)


def test_provider_errors_are_retried_and_the_job_sent_once(
    sandbox_factory, sqlite_url, runtime_factory, redis_client
):
    clock, box, rt, _ = _setup(sandbox_factory, sqlite_url, runtime_factory)
    box.state.fail_next(2, status=503)
    handle = enqueue(one(number(1)), runtime=rt)
    _drain(rt, clock)
    status = job_status(handle.id, rt)
    assert status["state"] == "submitted" and status["attempts"] == 2
    assert set(sandbox_refs(box).values()) == {1}


def test_retries_exhausted_fail_the_job_with_the_last_reason(
    sandbox_factory, sqlite_url, runtime_factory, redis_client
):
    clock, box, rt, _ = _setup(sandbox_factory, sqlite_url, runtime_factory, send_max_retries=2)
    box.state.fail_next(10, status=500)
    handle = enqueue(one(number(2)), runtime=rt)
    _drain(rt, clock)
    status = job_status(handle.id, rt)
    assert status["state"] == "failed"
    assert "500" in status["reason"]
    assert status["recipients"][0]["outcome"] == "failed"
    assert sandbox_refs(box) == {}


def test_permanent_refusal_rejects_the_job(sandbox_factory, sqlite_url, runtime_factory, redis_client):
    # Sendmode allows only letters, digits and spaces in a sender id; Retarus's rules (ours) allow "!"
    clock, box, rt, _ = _setup(sandbox_factory, sqlite_url, runtime_factory, "sendmode")
    handle = enqueue(one(number(3), src="ACME!"), runtime=rt)
    _drain(rt, clock)
    status = job_status(handle.id, rt)
    assert status["state"] == "rejected"
    assert "INVALID_SENDER_ID" in status["reason"]
    assert status["recipients"][0]["outcome"] == "failed"


def test_dropped_or_garbled_answer_is_looked_up_not_resent(
    sandbox_factory, sqlite_url, runtime_factory, redis_client
):
    clock, box, rt, _ = _setup(sandbox_factory, sqlite_url, runtime_factory)
    # The provider accepts the job, then the connection drops before the answer (then: a garbled answer)
    box.state.drop(1, path_prefix="/rest/v1/jobs")
    first = enqueue(one(number(4)), runtime=rt)
    result = submit_next("default", rt)
    assert result.kind == "unknown" and job_status(first.id, rt)["state"] == "submitting"
    _drain(rt, clock)
    box.state.malformed(1, path_prefix="/rest/v1/jobs")
    second = enqueue(one(number(5)), runtime=rt)
    _drain(rt, clock)
    for handle in (first, second):
        status = job_status(handle.id, rt)
        assert status["state"] == "submitted" and status["provider_job_id"].startswith("J.")
    refs = sandbox_refs(box)
    assert sorted(refs) == sorted(recipient_ids(rt)) and set(refs.values()) == {1}
    with transaction(rt.sessions) as session:
        reasons = [s.reason or "" for s in session.exec(select(Submission))]
    assert sum("found at the provider" in r for r in reasons) == 2


def test_http_simple_call_of_unknown_fate_is_closed_unknown_not_resent(
    sandbox_factory, sqlite_url, runtime_factory, redis_client
):
    clock, box, rt, _ = _setup(sandbox_factory, sqlite_url, runtime_factory, "retarus_http")
    box.state.drop(1, path_prefix="/httpsimple/v1/sms")
    handle = enqueue(one(number(6)), runtime=rt)
    _drain(rt, clock)
    status = job_status(handle.id, rt)
    assert status["state"] == "finished"
    assert status["recipients"][0]["outcome"] == "unknown"
    assert "no lookup" in status["recipients"][0]["reason"]
    assert len([c for c in box.state.calls() if c.method == "POST"]) == 1


def test_broker_down_at_enqueue_keeps_the_job_and_the_sweep_publishes_it(
    sandbox, sqlite_url, runtime_factory, redis_client
):
    down = runtime_factory(smsq_settings(sandbox, sqlite_url, broker_url="redis://127.0.0.1:1/0"))
    handle = enqueue(one(number(7)), runtime=down)
    assert handle.id
    with transaction(down.sessions) as session:
        job = session.get(Job, handle.id)
        assert job is not None and job.state == "queued" and job.published_at is None
    # When the broker is back, the release sweep publishes it (once the grace period has passed)
    later = ManualClock(datetime.now(UTC) + timedelta(seconds=5))
    up = runtime_factory(smsq_settings(sandbox, sqlite_url, queued_grace_s=1.0), clock=later)
    report = release(up)
    assert report.republished == 1
    assert redis_client.llen(Queue.SEND.value) == 1


def test_wrong_credentials_keep_the_jobs_queued(sandbox_factory, sqlite_url, runtime_factory, redis_client):
    clock, box, rt, _ = _setup(sandbox_factory, sqlite_url, runtime_factory, provider_password="wrong")
    handle = enqueue(one(number(8)), runtime=rt)
    result = submit_next("default", rt)
    assert result.kind == "retry"
    status = job_status(handle.id, rt)
    assert status["state"] == "queued" and status["attempts"] == 0
    assert "credentials" in status["reason"] and "wrong" not in status["reason"]
    assert sandbox_refs(box) == {}


def test_a_refused_shared_call_is_split_so_one_bad_job_spoils_only_itself(
    sandbox, sqlite_url, runtime_factory, redis_client
):
    # Given a provider (MockTransport) refusing any job that carries the number ending in 9999
    posts: list[list[str]] = []

    def provider(request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return httpx.Response(404, json={"code": 404, "message": "Not Found"})
        body = json.loads(request.content)
        dsts = [r["dst"] for m in body["messages"] for r in m["recipients"]]
        posts.append(dsts)
        if any(d.endswith("9999") for d in dsts):
            return httpx.Response(400, json={"code": 400, "message": "destination refused"})
        return httpx.Response(201, json={"jobId": f"J.20300101-000000.000-{len(posts):018d}"})

    rt = runtime_factory(smsq_settings(sandbox, sqlite_url), transport=httpx.MockTransport(provider))
    rt.wake = lambda *a, **k: False
    good = enqueue_many([one(number(i), text="Same options") for i in range(3)], runtime=rt)
    bad = enqueue(one("+4917612349999", text="Same options"), runtime=rt)
    # When the backlog is submitted: one shared call first, refused
    while submit_next("default", rt).kind != "idle":
        pass
    # Then every job went alone afterwards: the bad one is rejected, the good ones submitted
    assert len(posts[0]) == 4
    assert sorted(len(p) for p in posts[1:]) == [1, 1, 1, 1]
    assert job_status(bad.id, rt)["state"] == "rejected"
    assert "destination refused" in job_status(bad.id, rt)["reason"]
    assert {job_status(h.id, rt)["state"] for h in good} == {"submitted"}


def test_a_limiter_redis_failure_mid_call_keeps_the_job_queued_not_failed(
    sandbox, sqlite_url, runtime_factory, redis_client
):
    import redis as redis_lib

    from worker.rate_limit.limiter import RedisRateLimiter

    class RedisGoneAtTheWire(RedisRateLimiter):
        def attempt(self, kind="send"):
            raise redis_lib.ConnectionError("Connection refused")

    rt = runtime_factory(smsq_settings(sandbox, sqlite_url))
    rt.wake = lambda *a, **k: False
    rt._limiters["default"] = RedisGoneAtTheWire(rt.redis, "default", 100, 60.0)  # the seam a runtime owns
    handle = enqueue(one(number(77)), runtime=rt)
    result = submit_next("default", rt)
    assert result.kind == "throttled" and result.calls == 0
    status = job_status(handle.id, rt)
    assert status["state"] == "queued" and status["recipients"][0]["outcome"] == "pending"
    assert sandbox_refs(sandbox) == {}
